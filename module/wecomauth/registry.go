package wecomauth

// The provisioned handlers of this process, for what reaches them from
// outside a request: the admin API (admin.go) and the contact changes
// applied to every handler of a corp. Caddy provisions a new config before
// it cleans up the old one, so for a moment both configs' handlers are
// here: readers must expect the same corp more than once.

import "sync"

var registry struct {
	mu       sync.Mutex
	handlers []*Handler // in provisioning order
}

func registerHandler(h *Handler) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.handlers = append(registry.handlers, h)
}

func unregisterHandler(h *Handler) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for i, g := range registry.handlers {
		if g == h {
			registry.handlers = append(registry.handlers[:i:i], registry.handlers[i+1:]...)
			return
		}
	}
}

// liveHandlers returns the handlers provisioned and not yet cleaned up.
func liveHandlers() []*Handler {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return append([]*Handler(nil), registry.handlers...)
}
