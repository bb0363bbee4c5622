// Package wecom is a client for the WeCom (企业微信) server API calls the
// gateway needs: gettoken, miniprogram/jscode2session and user/get, and
// department/simplelist and tag/get behind allow_departments and
// allow_tags.
//
// It is internal to the gateway, not a library. wecomgate is a Caddy plugin:
// what it promises is its Caddyfile, its HTTP endpoints and its headers, not
// a Go API. This package is shaped by what the gateway needs — only the
// answer fields the gateway reads, failures sorted by how the gateway
// answers them, identities held to what the gateway can trust — and being
// internal lets it follow the gateway (WeCom's session key for
// /wecom/decrypt, a Kind of its own for a department or tag that has no
// members to admit) without a compatibility promise to anyone else.
//
// # Errors
//
// Every failure is an *Error naming the endpoint, the corp id and, when
// WeCom answered one, the errcode. Its Kind tells the caller what to do:
//
//   - KindTransient: network error, timeout, HTTP 5xx/429/408, non-JSON or
//     oversized answer, errcode -1, 45033 or 45009, or the caller's context
//     ended. Retry later (503 with Retry-After). The client has already
//     retried within Options.Attempts, with exponential backoff and full
//     jitter, except for 45009: WeCom then blocks the API for a minute and
//     every early retry extends the block.
//   - KindInvalidCode: 40029, 40163, 41008 — the code is expired, spent or
//     foreign; the mini program must call wx.qy.login again.
//   - KindUserNotAllowed: from user/get, 60011 (outside the app's visible
//     range), 60111 (no such user).
//   - KindNotFound: from DepartmentTree and Tag only, a department or tag
//     that does not exist (60003, 60123; 40068) or that the app may not see
//     (60011). WeCom answered, so the caller treats it as an empty set, not
//     as an outage; the Errcode tells the two apart.
//   - KindDefinitive: 40001 (wrong secret), 40013, 48002, 60020, any errcode
//     not listed here, any other HTTP status (redirects are not followed:
//     they would replay the query), or a success answer missing its fields
//     or naming an identity WeCom cannot have issued: a userid that is not
//     ValidUserID, or a corpid that is not printable ASCII without ' ' and
//     ':' of at most 64 bytes; a department tree without the department
//     asked, a department id below 1, a list longer than 100,000. Retrying
//     will not help; it is usually configuration, or an API base that is
//     not WeCom.
//   - KindTokenInvalid (40014, 42001, 42009) is handled inside: the token
//     is dropped and fetched anew and the call repeated once. Should WeCom
//     reject the fresh token too, the error is returned as KindTransient
//     with the errcode kept: the fault is WeCom's and likely brief, and the
//     login code is still unspent, so the client should retry.
//
// Error strings, log lines and the causes inside errors never contain the
// secret, an access token, a login code or a session key: *url.Error, whose
// text is the full URL with its query, is replaced by the host and path.
//
// # Access tokens
//
// Each Client caches tokens per (corp id, secret), the secret held only as
// a salted SHA-256. The cache is the Client's and has no process-wide copy:
// to keep tokens across a Caddy config reload the gateway keeps the Client,
// one per API base in a caddy.UsagePool that the new config joins before
// the old one leaves. A token is used until its expires_in (and a second,
// as expires_in is whole seconds) runs out, not refreshed early: within its
// validity WeCom answers gettoken with the same token and what is left of
// its life, so an early refresh only spends a call. A call that meets the
// expiry answers 42001 and is repeated once with the new token. A gettoken
// that answers the token already held (say after a 40014) is not counted as
// a refresh, and the token then ends when WeCom says. expires_in is first
// clamped to between 1 minute and 4 hours (twice WeCom's 7200 s): zero,
// negative, fractional, huge or missing values neither overflow nor make a
// token that never expires. At most one gettoken per key is in flight
// whatever the concurrency: the fetch is shared, runs detached from any one
// caller's cancellation (bounded by Timeout and Attempts instead), and each
// waiter returns on its own context. When a call reports the token invalid
// it is dropped only if it is still the cached one, so a request whose
// stale token fails after another request refreshed does not cause a second
// fetch.
//
// A definitive gettoken failure (notably 40001, wrong secret) is remembered
// for 30 seconds and a 45009 for 60 seconds: during that window Token and
// the calls needing it fail at once without asking WeCom, so a flood of
// logins with a bad secret costs one gettoken per window rather than the IP
// ban WeCom imposes after many. ForgetFailures, which the gateway calls at
// every config reload, ends the window early for all but 45009.
//
// A jscode2session attempt that timed out or lost its answer may have
// spent the code at WeCom, and a retry would answer 40029: it is not sent
// again (KindTransient, so the gateway answers 503 and the mini program
// takes a fresh code). It is retried only when the request cannot have
// reached WeCom (the connection was never made) or WeCom answered -1.
package wecom
