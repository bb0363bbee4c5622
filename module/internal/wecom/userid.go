package wecom

import (
	"errors"
	"strconv"
)

const (
	// maxUserIDLen: WeCom userids are 1 to 64 bytes (创建成员,
	// /document/path/90195).
	maxUserIDLen = 64
	// maxCorpIDLen bounds a corp id answered by jscode2session. Real ones
	// are "ww" and 16 hex digits; the bound only keeps garbage out.
	maxCorpIDLen = 64
)

// ValidUserID reports whether s can be a WeCom userid. WeCom's 创建成员
// page (/document/path/90195) says a userid is 1 to 64 bytes of ASCII
// letters, digits and "_-@.", the first a letter or digit; the opaque ids
// jscode2session gives for users of another corp ("wo…") follow it too.
//
// The gateway puts userids in headers, logs and cache keys, and names
// review sessions "review:<user>", so an answer from a hostile or broken
// API base must not be able to pass off "review:boss", a separator, a
// space, a slash or a control character as a userid. Requiring a letter or digit first also keeps out
// ".", ".." and "-flag" look-alikes, which WeCom never creates.
//
// WeCom compares userids case-insensitively (/document/path/96255); this
// only checks the form and does not fold case.
func ValidUserID(s string) bool {
	if len(s) == 0 || len(s) > maxUserIDLen || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' && c != '@' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validCorpID is deliberately looser than ValidUserID: WeCom documents no
// alphabet for corp ids, so it accepts any printable ASCII but the space
// and ':' (the separator of the gateway's keys and principals), up to 64
// bytes.
func validCorpID(s string) bool {
	if len(s) == 0 || len(s) > maxCorpIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// checkUserID is the answer check shared by the calls that return a
// userid. The value is not quoted in the error: it came from whoever
// answered and may be built to forge a log line; its length is enough to
// tell an empty field from garbage.
func checkUserID(s string) error {
	if s == "" {
		return errors.New("no userid")
	}
	if !ValidUserID(s) {
		return errors.New("userid of " + strconv.Itoa(len(s)) + " bytes is not a WeCom userid (1-64 bytes of A-Z a-z 0-9 _-@.)")
	}
	return nil
}
