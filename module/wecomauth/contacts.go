package wecomauth

// What an accepted callback does (SPEC §4a): WeCom's contact changes
// (通讯录回调通知: 成员变更 /document/path/90970, 部门变更 /document/path/90971,
// 标签变更 /document/path/90972) reach every instance through the
// cluster-wide operations endUserSessions, recheckUser and dropDirectory.
// Each is idempotent, so a resent event (WeCom resends what it got no
// answer for) does no harm.

import (
	"context"
	"errors"
	"fmt"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// contactEvent is the part of a decrypted callback the gateway reads.
// Since 2022-08-15 newly configured callbacks carry only UserID and
// Department of a member, which is all this needs.
type contactEvent struct {
	MsgType    string `xml:"MsgType"`
	Event      string `xml:"Event"`
	ChangeType string `xml:"ChangeType"`
	UserID     string `xml:"UserID"`
	NewUserID  string `xml:"NewUserID"`
}

// The change types acted on, and the others WeCom documents, for the
// metric's label: anything else is "other", so a label is never a value
// chosen by whoever sent the message.
var changeTypes = map[string]bool{
	"create_user": true, "update_user": true, "delete_user": true,
	"create_party": true, "update_party": true, "delete_party": true,
	"update_tag": true,
}

func (ev *contactEvent) isContactChange() bool {
	return ev.MsgType == "event" && ev.Event == "change_contact"
}

// label names the event for metrics and logs.
func (ev *contactEvent) label() string {
	if !ev.isContactChange() {
		return "other"
	}
	if changeTypes[ev.ChangeType] {
		return ev.ChangeType
	}
	return "change_contact_other"
}

// actOn applies a contact change of corp c.
func (h *Handler) actOn(ctx context.Context, c *corp, ev *contactEvent) error {
	if !ev.isContactChange() {
		return nil
	}
	switch ev.ChangeType {
	case "delete_user":
		if !wecom.ValidUserID(ev.UserID) {
			return fmt.Errorf("delete_user without a valid UserID")
		}
		return h.endUserSessions(ctx, c.id, ev.UserID)
	case "update_user":
		// A userid change (NewUserID) makes the old id unknown to WeCom
		// and the new one a user to ask about afresh: both are rechecked.
		var errs []error
		for _, id := range []string{ev.UserID, ev.NewUserID} {
			if id != "" && wecom.ValidUserID(id) {
				errs = append(errs, h.recheckUser(ctx, c.id, id))
			}
		}
		return errors.Join(errs...)
	case "create_party", "update_party", "delete_party", "update_tag":
		// A department moved, renamed or deleted, or a tag's members
		// changed: whatever the allow-lists found in the trees and tags
		// may have changed.
		return h.dropDirectory(ctx, c.id)
	}
	// create_user: a user WeCom did not know yet has nothing cached to
	// drop (logins always ask WeCom).
	return nil
}
