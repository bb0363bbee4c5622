package cluster

// Leaving: the last config of a process writes the instance's heartbeat
// one last time, marked left, as it goes, so that the others (and a State
// started later in the same process, as after every test or a restart of
// the last config) stop counting it at once instead of for deadAfter
// polls. The record keeps what the instance spent of each shared quota:
// those calls still count at WeCom until their window has passed, so the
// others leave room for them until then and no longer (instances.go keeps
// the record that long).

import (
	"context"
	"path"
	"time"
)

// leaveWait is how long leaving waits for a poll under way.
const leaveWait = 3 * time.Second

// leave writes this instance's last heartbeat through l (best effort: a
// record left behind stops counting as live after deadAfter polls anyway,
// and its claims are then read as those of an instance that may have spent
// up to its share). It waits a little for a poll under way, so that no
// heartbeat is written over it; a poll that hangs on storage longer sees
// left before it writes.
func (s *State) leave(l *lent) {
	s.left.Store(true)
	for deadline := time.Now().Add(leaveWait); ; time.Sleep(10 * time.Millisecond) {
		if s.syncMu.TryLock() {
			defer s.syncMu.Unlock()
			break
		}
		if time.Now().After(deadline) {
			break
		}
	}
	now := s.clock()
	if l.now != nil {
		now = l.now()
	}
	var claims map[string]Claim
	if l.claimer != nil {
		claims = l.claimer.Leave(now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.st.Store(ctx, path.Join(instancesDir, s.id), encodeBeat(now, beat{Left: true, Claims: claims}))
}
