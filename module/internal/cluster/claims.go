package cluster

// Claims: a quota the instances share (the WeCom budget, SPEC §6b) is
// split through their heartbeats. Each heartbeat says, per quota, how much
// of it the instance may spend (its share) and has spent within the
// quota's window; the others leave it that much room.
//
// The order of a heartbeat is what makes a share safe to use: the claims
// are written first, the others' heartbeats read after, and only then may
// a claimer use what it wrote (Claimer.Read). Of any two instances raising
// their shares at once, the one that wrote last read the other's claim
// before using its own, so together they stay within the quota.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Claim is one quota as an instance publishes it: within Window it has
// made Used calls and may make up to Share (whichever is larger bounds it
// until its next heartbeat).
type Claim struct {
	Used   int           `json:"u"`
	Share  int           `json:"s"`
	Window time.Duration `json:"w"`
}

// Claimer shares quotas through the heartbeats. Claims is called just
// before this instance's heartbeat is written, Read just after the others'
// were read, with what they claimed and how long what it wrote holds
// (Hold); a heartbeat that fails does not call Read. Granted, called after
// Read, is what the claimer may spend now: where that is less than it
// claimed, the record is written again at once, so that an instance
// joining meanwhile does not find the room held by claims already given
// up. Leave is called as the instance leaves: its final claims, after
// which it spends nothing.
type Claimer interface {
	Claims(now time.Time) map[string]Claim
	Read(now time.Time, peers []Peer, hold time.Duration)
	Granted(now time.Time) map[string]Claim
	Leave(now time.Time) map[string]Claim
}

// Peer is another instance's heartbeat as last read.
type Peer struct {
	Live bool // its heartbeat moved within the last few polls
	Left bool // it said it stopped: it makes no more calls (leave.go)
	// Seen is this instance's time when the heartbeat last moved.
	Seen   time.Time
	Claims map[string]Claim
}

// Quiet is how long a peer's heartbeat may stand still before it is no
// longer counted live.
func (s *State) Quiet() time.Duration { return deadAfter * s.Interval() }

// Hold is how long a claimer may go on spending what it was granted after
// its last heartbeat was written (a poll that hangs on storage is no reason
// to stop): twice Quiet. The others count a peer gone quiet at its claims
// for Hold and a window after they last saw it move, and then forget it.
func (s *State) Hold() time.Duration { return 2 * s.Quiet() }

// beat is a heartbeat record: the writer's clock in unix ms, then on a
// second line, when there is any, {"left":…,"claims":{…}}.
type beat struct {
	Left   bool             `json:"left,omitempty"`
	Claims map[string]Claim `json:"claims,omitempty"`
}

func encodeBeat(now time.Time, b beat) []byte {
	out := strconv.AppendInt(nil, now.UnixMilli(), 10)
	if !b.Left && len(b.Claims) == 0 {
		return out
	}
	j, _ := json.Marshal(b) // of ints, bools and strings: cannot fail
	return append(append(out, '\n'), j...)
}

func decodeBeat(v []byte) (int64, beat, error) {
	first, rest, _ := bytes.Cut(v, []byte("\n"))
	ms, err := strconv.ParseInt(string(first), 10, 64)
	var b beat
	if err == nil && len(rest) > 0 {
		err = json.Unmarshal(rest, &b)
	}
	return ms, b, err
}

// longestWindow is the longest window a record claims: what it spent there
// counts at WeCom that long, so the record is kept at least that long.
func (b beat) longestWindow() time.Duration {
	var w time.Duration
	for _, c := range b.Claims {
		w = max(w, c.Window)
	}
	return w
}

// claimsOf gathers the claims of every config's claimer.
func (s *State) claimsOf(now time.Time, claimers []Claimer) map[string]Claim {
	out := map[string]Claim{}
	for _, c := range claimers {
		for k, v := range c.Claims(now) {
			out[k] = v
		}
	}
	return out
}

// Lowered tells whether any claim of now is smaller than in was.
func Lowered(was, now map[string]Claim) bool {
	for k, c := range now {
		if w, ok := was[k]; ok && c.Share < w.Share {
			return true
		}
	}
	return false
}

// claimers are those of the configs lent, each once.
func (s *State) claimers() []Claimer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Claimer
	seen := map[Claimer]bool{}
	for _, l := range s.lent {
		if l.claimer != nil && !seen[l.claimer] {
			seen[l.claimer] = true
			out = append(out, l.claimer)
		}
	}
	return out
}

// Peers is the other instances as last read.
func (s *State) Peers() []Peer {
	now, limit := s.now(), s.Quiet()
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	out := make([]Peer, 0, len(s.peers.m))
	for _, pr := range s.peers.m {
		out = append(out, Peer{
			Live:   pr.live(now, limit),
			Left:   pr.beat.Left,
			Seen:   pr.changed,
			Claims: pr.beat.Claims,
		})
	}
	return out
}

// unclaimed are those of claimers that have not yet written a claim.
func (s *State) unclaimed(claimers []Claimer) []Claimer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Claimer
	for _, c := range claimers {
		if !s.claimed[c] {
			out = append(out, c)
		}
	}
	return out
}

func (s *State) markClaimed(claimers []Claimer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range claimers {
		s.claimed[c] = true
	}
}
