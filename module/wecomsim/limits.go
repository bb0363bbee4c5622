package wecomsim

// WeCom's frequency limits and a latency per call, emulated so that the
// gateway's budget and 45009 pause can be shown and tested on one machine.
// WeCom counts calls per corp and per API (10,000 a minute and 150,000 an
// hour, /document/path/90454, 主动调用频率限制); past a limit it answers
// 45009 and blocks that API for that corp, a minute for the minute limit.
// Here a Limit says how many calls of an endpoint a corp may make in any
// Window (a sliding count), and how long the block lasts.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Limit is one emulated frequency limit: each corp may make Calls calls
// of Endpoint ("" or "*" for each endpoint separately) in any Window; the
// call past it answers 45009 and so does every call of that corp's
// endpoint for Block (default 60 s, WeCom's minute block).
type Limit struct {
	Endpoint string
	Calls    int
	Window   time.Duration
	Block    time.Duration
}

// Latency delays every answer of Endpoint ("" or "*" for all) by Delay, as
// a slow WeCom would (a Fault's Delay is for a number of calls; this is
// for all of them).
type Latency struct {
	Endpoint string
	Delay    time.Duration
}

// limiter is the state of the emulated limits (under Simulator.mu).
type limiter struct {
	limits  []Limit
	latency []Latency
	calls   map[string][]time.Time // corp id + endpoint → times of counted calls
	blocked map[string]time.Time   // corp id + endpoint → end of the block
	limited map[string]int         // endpoint → 45009s answered
}

func newLimiter() limiter {
	return limiter{calls: map[string][]time.Time{}, blocked: map[string]time.Time{}, limited: map[string]int{}}
}

func checkLimit(l Limit) error {
	if l.Endpoint != "" && !slices.Contains(endpoints, l.Endpoint) {
		return fmt.Errorf("endpoint %q is not one of %s or \"*\"", l.Endpoint, strings.Join(endpoints, ", "))
	}
	if l.Calls < 1 || l.Window <= 0 || l.Block < 0 {
		return errors.New("a limit wants calls of 1 or more, a positive window and a block of 0 (60 s) or more")
	}
	return nil
}

// SetLimits replaces the emulated frequency limits; none turns them off.
func (s *Simulator) SetLimits(limits ...Limit) error {
	for i := range limits {
		limits[i].Endpoint = normalizeEndpoint(limits[i].Endpoint)
		if err := checkLimit(limits[i]); err != nil {
			return err
		}
		if limits[i].Block == 0 {
			limits[i].Block = 60 * time.Second
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.limits = slices.Clone(limits)
	clear(s.lim.calls)
	clear(s.lim.blocked)
	return nil
}

// SetLatency replaces the per-call latencies; none turns them off.
func (s *Simulator) SetLatency(latency ...Latency) error {
	for i := range latency {
		latency[i].Endpoint = normalizeEndpoint(latency[i].Endpoint)
		if l := latency[i]; (l.Endpoint != "" && !slices.Contains(endpoints, l.Endpoint)) || l.Delay < 0 {
			return fmt.Errorf("latency: endpoint %q and delay %v: want a known endpoint or \"*\" and a delay of 0 or more", l.Endpoint, l.Delay)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.latency = slices.Clone(latency)
	return nil
}

// Limited is how many 45009s each endpoint answered because of the
// emulated limits.
func (s *Simulator) Limited() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(endpoints))
	for _, e := range endpoints {
		out[e] = s.lim.limited[e]
	}
	return out
}

// latencyLocked is the delay of a call of endpoint.
func (s *Simulator) latencyLocked(endpoint string) time.Duration {
	var d time.Duration
	for _, l := range s.lim.latency {
		if l.Endpoint == "" || l.Endpoint == endpoint {
			d = max(d, l.Delay)
		}
	}
	return d
}

// overLimit counts a call of endpoint for the corp it is made for and
// tells whether it answers 45009.
func (s *Simulator) overLimit(endpoint string, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lim.limits) == 0 {
		return false
	}
	q := r.URL.Query()
	corpID := q.Get("corpid")
	if endpoint != EndpointGetToken {
		t := s.tokens[q.Get("access_token")]
		if t == nil {
			return false // answered 40014 anyway
		}
		corpID = t.corp.id
	}
	now := time.Now()
	key := corpID + "\x00" + endpoint
	if now.Before(s.lim.blocked[key]) {
		s.lim.limited[endpoint]++
		return true
	}
	times := s.lim.calls[key]
	over := false
	for _, l := range s.lim.limits {
		if l.Endpoint != "" && l.Endpoint != endpoint {
			continue
		}
		n := 0
		for _, at := range times {
			if now.Sub(at) < l.Window {
				n++
			}
		}
		if n >= l.Calls {
			over = true
			s.lim.blocked[key] = now.Add(l.Block)
		}
	}
	if over {
		s.lim.limited[endpoint]++
		return true
	}
	// Keep only what the longest window still counts.
	var longest time.Duration
	for _, l := range s.lim.limits {
		longest = max(longest, l.Window)
	}
	i := 0
	for i < len(times) && now.Sub(times[i]) >= longest {
		i++
	}
	s.lim.calls[key] = append(times[i:], now)
	return false
}

type limitJSON struct {
	Endpoint string       `json:"endpoint,omitempty"`
	Calls    int          `json:"calls"`
	Window   jsonDuration `json:"window"`
	Block    jsonDuration `json:"block,omitempty"`
}

type latencyJSON struct {
	Endpoint string       `json:"endpoint,omitempty"`
	Delay    jsonDuration `json:"delay"`
}

// devSetLimits: PUT <dev>/limits {"limits":[{"endpoint","calls","window","block"}],
// "latency":[{"endpoint","delay"}]} replaces both; GET shows them with the
// 45009s answered.
func (s *Simulator) devSetLimits(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Limits  []limitJSON   `json:"limits"`
		Latency []latencyJSON `json:"latency"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	var limits []Limit
	for _, l := range in.Limits {
		limits = append(limits, Limit{Endpoint: l.Endpoint, Calls: l.Calls, Window: time.Duration(l.Window), Block: time.Duration(l.Block)})
	}
	var latency []Latency
	for _, l := range in.Latency {
		latency = append(latency, Latency{Endpoint: l.Endpoint, Delay: time.Duration(l.Delay)})
	}
	if err := s.SetLimits(limits...); err != nil {
		writeDevError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if err := s.SetLatency(latency...); err != nil {
		writeDevError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) devGetLimits(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := struct {
		Limits  []limitJSON    `json:"limits"`
		Latency []latencyJSON  `json:"latency"`
		Limited map[string]int `json:"limited"`
	}{Limits: []limitJSON{}, Latency: []latencyJSON{}, Limited: map[string]int{}}
	for _, l := range s.lim.limits {
		out.Limits = append(out.Limits, limitJSON{Endpoint: l.Endpoint, Calls: l.Calls, Window: jsonDuration(l.Window), Block: jsonDuration(l.Block)})
	}
	for _, l := range s.lim.latency {
		out.Latency = append(out.Latency, latencyJSON{Endpoint: l.Endpoint, Delay: jsonDuration(l.Delay)})
	}
	for _, e := range endpoints {
		out.Limited[e] = s.lim.limited[e]
	}
	s.mu.Unlock()
	writeDevJSON(w, http.StatusOK, out)
}
