package cluster

// Leaving: the last config of a process deletes the instance's heartbeat
// as it goes, so that the others (and a State started later in the same
// process, as after every test or a restart of the last config) stop
// counting it at once instead of for deadAfter polls. The WeCom budget
// divides its quota by Instances(): an instance counted that no longer
// runs only shrinks the others' shares, but for no reason.

import (
	"context"
	"path"
	"time"

	"github.com/caddyserver/certmagic"
)

// leave deletes this instance's heartbeat from st (best effort: a record
// left behind stops counting after deadAfter polls anyway).
func (s *State) leave(st certmagic.Storage) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = st.Delete(ctx, path.Join(instancesDir, s.id))
}
