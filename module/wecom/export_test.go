package wecom

// InvalidateToken exposes the compare-and-delete of the token cache, so a
// test can play a request whose stale token failed after a refresh.
func InvalidateToken(c *Client, corp Corp, token string) bool {
	return c.tokens.invalidate(c.keyOf(corp), token)
}
