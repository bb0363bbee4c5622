/**
 * wecomgate client kit for WeCom (企业微信) mini programs: signs the user in through the wecomgate
 * gateway with `wx.qy.login`, keeps the session token in storage and adds it to every request.
 * Dependency-free CommonJS in plain ES2015 (no async/await, no `?.`): no build step on any base
 * library. Usage: docs/client.md.
 */
'use strict';

/** A token this close to its expiry counts as expired (clock skew, slow links). */
const EXPIRY_MARGIN_MS = 30 * 1000;

/** The mini program's global `wx`, when there is one. */
const globalWx = typeof wx !== 'undefined' ? wx : undefined; // eslint-disable-line no-undef

/**
 * Builds the Error the kit rejects with.
 * @param {string} code   the gateway's error code (`unauthenticated`, `wrong_corp`, …) or one of the
 *                        kit's own: `network_error`, `not_wecom`, `qy_login_failed`, `http_<status>`
 * @param {number} status HTTP status, 0 when no response came
 * @param {string} message
 * @param {object} [extra] `corp` (wrong_corp), `data` and `header` of the response
 * @returns {Error & {code: string, status: number, corp?: string}}
 */
function makeError(code, status, message, extra) {
  const err = new Error(message || code);
  err.name = 'WecomgateError';
  err.code = code;
  err.status = status;
  return Object.assign(err, extra);
}

/** The response body as an object when it is (or holds) JSON. */
function parse(data) {
  if (typeof data !== 'string') return data;
  try { return JSON.parse(data); } catch (e) { return data; }
}

/** The Error for a response the gateway (or the backend) refused. */
function fromResponse(res) {
  const body = parse(res.data);
  const known = body && typeof body.error === 'string';
  const extra = { data: res.data, header: res.header };
  if (known && body.corp) extra.corp = body.corp;
  return makeError(known ? body.error : 'http_' + res.statusCode, res.statusCode,
    (known && body.message) || 'HTTP ' + res.statusCode, extra);
}

/** Whether a 401 came from the gateway (so a new login can cure it) rather than from the backend. */
function isGateway401(res) {
  if (res.statusCode !== 401) return false;
  const body = parse(res.data);
  const h = res.header || {};
  const auth = Object.keys(h).filter((n) => n.toLowerCase() === 'www-authenticate').map((n) => h[n]).join();
  return (body && body.error === 'unauthenticated') || /realm="wecom"/i.test(auth);
}

/**
 * Creates a client for one gateway.
 * @param {object} options
 * @param {string} options.baseURL      the gateway's origin, e.g. `https://api.example.com` (must be a
 *                                      request legal domain of the mini program)
 * @param {object} [options.wx]         the `wx` object; defaults to the global one
 * @param {string} [options.corp]       corp name to sign in with; default: the gateway's first corp
 * @param {string} [options.storageKey] storage key of the session; default `wecomgate`
 * @param {string} [options.endpoints]  the gateway's `endpoints` prefix; default `/wecom`
 */
function createClient(options) {
  const opts = options || {};
  const wx = opts.wx || globalWx;
  if (!wx || typeof wx.request !== 'function') throw new TypeError('wecomgate: no wx object');
  if (!opts.baseURL) throw new TypeError('wecomgate: baseURL is required');
  const base = String(opts.baseURL).replace(/\/+$/, '');
  const prefix = '/' + String(opts.endpoints || '/wecom').replace(/^\/+|\/+$/g, '');
  const key = opts.storageKey || 'wecomgate';
  let inFlight = null; // the code login every caller waits on
  let wecom = false; // isWeCom(), once seen true

  // Storage holds { corp, token, expiresAt, user }; corp is the remembered corp name.
  function load() {
    let v;
    try { v = wx.getStorageSync(key); } catch (e) { v = null; }
    return v && typeof v === 'object' ? v : {};
  }
  function save(v) { try { wx.setStorageSync(key, v); } catch (e) { /* no storage: sign in per request */ } }
  function dropToken(token) {
    const s = load();
    if (s.token && (!token || s.token === token)) save(s.corp ? { corp: s.corp } : {});
  }

  /**
   * The signed-in user, or null when there is no unexpired session.
   * @returns {{token: string, expiresAt: number, userid: string, corpid?: string, corp?: string,
   *            name: string, review: boolean} | null}
   */
  function session() {
    const s = load();
    if (!s.token || !(s.expiresAt - EXPIRY_MARGIN_MS > Date.now())) return null;
    return Object.assign({ token: s.token, expiresAt: s.expiresAt }, s.user);
  }

  /** wx.request as a Promise: resolves with every HTTP status, rejects only when no response came. */
  function send(o) {
    return new Promise((resolve, reject) => {
      const req = Object.assign({}, o, {
        url: /^https?:\/\//i.test(o.url) ? o.url : base + o.url,
        success: resolve,
        fail: (e) => reject(makeError('network_error', 0, (e && e.errMsg) || 'request failed')),
      });
      delete req.complete;
      wx.request(req);
    });
  }

  function post(endpoint, data, token) {
    const header = { 'Content-Type': 'application/json' };
    if (token) header.Authorization = 'Bearer ' + token;
    return send({ url: prefix + endpoint, method: 'POST', data: data, header: header });
  }

  /** A fresh one-time code from wx.qy.login. */
  function qyCode() {
    return new Promise((resolve, reject) => {
      if (!wx.qy || typeof wx.qy.login !== 'function') {
        reject(makeError('not_wecom', 0, 'wx.qy.login exists only inside WeCom; use reviewLogin'));
        return;
      }
      wx.qy.login({
        success: (r) => (r && r.code ? resolve(r.code) : reject(makeError('qy_login_failed', 0, 'wx.qy.login gave no code'))),
        fail: (e) => reject(makeError('qy_login_failed', 0, (e && e.errMsg) || 'wx.qy.login failed')),
      });
    });
  }

  /** Stores the session a login answered, keeping `corp` as the remembered corp. */
  function signedIn(res, corp) {
    const b = parse(res.data);
    if (res.statusCode !== 200 || !b || !b.token) throw fromResponse(res);
    const user = { userid: b.userid, corpid: b.corpid, corp: b.corp, name: b.name, review: !!b.review };
    const s = { token: b.token, expiresAt: Date.now() + (Number(b.expires_in) || 0) * 1000, user: user };
    if (corp) s.corp = corp;
    save(s);
    return session() || Object.assign({ token: s.token, expiresAt: s.expiresAt }, user);
  }

  function codeLogin(explicit) {
    const remembered = load().corp;
    let corp = explicit || remembered || opts.corp || '';
    let fromMemory = !explicit && !!remembered;
    let keep = remembered;
    const attempt = (n) => qyCode()
      .then((code) => post('/login', corp ? { code: code, corp: corp } : { code: code }))
      .then((res) => {
        if (res.statusCode === 200) return signedIn(res, keep);
        const err = fromResponse(res);
        if (n < 2 && err.code === 'wrong_corp' && err.corp && err.corp !== corp) {
          // The code belongs to another corp of the gateway: it is spent, so take a fresh one.
          corp = keep = err.corp;
          return attempt(n + 1);
        }
        if (n < 2 && fromMemory && err.status === 400) {
          // The remembered corp may be gone from the gateway's configuration.
          corp = opts.corp || '';
          fromMemory = false;
          keep = undefined;
          save({});
          return attempt(n + 1);
        }
        throw err;
      });
    return attempt(0);
  }

  /**
   * Signs in with wx.qy.login (inside WeCom only). Concurrent calls share one login.
   * On `wrong_corp` it takes a fresh code, retries with the named corp and remembers that corp.
   * @param {{corp?: string}} [o] sign in with this corp rather than the remembered or configured one
   * @returns {Promise<object>} the session, as session() returns it
   */
  function login(o) {
    if (!inFlight) {
      inFlight = codeLogin((o && o.corp) || '').then(
        (s) => { inFlight = null; return s; },
        (e) => { inFlight = null; throw e; });
    }
    return inFlight;
  }

  /** Account/password login for the platform's reviewers (outside WeCom). */
  function reviewLogin(username, password) {
    return post('/review/login', { username: username, password: password })
      .then((res) => signedIn(res, load().corp));
  }

  /** The token to send: the stored one, else (in WeCom) a new login's, else none. */
  function currentToken() {
    const s = session();
    if (s) return Promise.resolve(s.token);
    if (inFlight || isWeCom()) return login().then((n) => n.token);
    return Promise.resolve('');
  }

  /** After a 401 for `stale`: the token another request already got, or a new login's. */
  function relogin(stale) {
    const s = session();
    if (s && s.token !== stale) return Promise.resolve(s.token);
    dropToken(stale);
    return login().then((n) => n.token);
  }

  /**
   * wx.request with the session. `url` may be a path on baseURL. Signs in first when needed (in
   * WeCom); on the gateway's 401 signs in again once and retries once.
   * @param {object|string} o wx.request options (url, method, data, header, timeout, dataType, …)
   * @returns {Promise<{statusCode: number, data: *, header: object}>} rejects with an Error
   *   carrying `.code` and `.status` for HTTP statuses >= 400 and network failures
   */
  function request(o) {
    const options = typeof o === 'string' ? { url: o } : Object.assign({}, o);
    let used = '';
    const go = (token) => {
      used = token;
      const header = Object.assign({}, options.header);
      if (token) header.Authorization = 'Bearer ' + token;
      return send(Object.assign({}, options, { header: header }));
    };
    return currentToken().then(go)
      .then((res) => (isGateway401(res) && isWeCom() ? relogin(used).then(go) : res))
      .then((res) => {
        if (res.statusCode < 400) return res;
        if (isGateway401(res)) dropToken(used);
        throw fromResponse(res);
      });
  }

  /** Ends the session at the gateway and clears the kit's storage (also when the call fails). */
  function logout() {
    const s = load();
    const clear = () => {
      try { wx.removeStorageSync(key); } catch (e) { save({}); }
    };
    if (!s.token) { clear(); return Promise.resolve(); }
    return post('/logout', {}, s.token).then((res) => {
      clear();
      if (res.statusCode >= 400) throw fromResponse(res);
    }, (e) => { clear(); throw e; });
  }

  /**
   * Whether the mini program runs inside WeCom (`environment === 'wxwork'`). WeCom has been seen to
   * leave `environment` out now and then, so only a positive answer is kept; a negative one is asked
   * again next time.
   */
  function isWeCom() {
    if (!wecom) {
      try { wecom = wx.getSystemInfoSync().environment === 'wxwork'; } catch (e) { wecom = false; }
    }
    return wecom;
  }

  /** isWeCom() through the asynchronous wx.getSystemInfo. @returns {Promise<boolean>} */
  function detectWeCom() {
    return new Promise((resolve) => {
      if (wecom || typeof wx.getSystemInfo !== 'function') { resolve(isWeCom()); return; }
      wx.getSystemInfo({
        success: (info) => resolve((wecom = !!info && info.environment === 'wxwork')),
        fail: () => resolve(isWeCom()),
      });
    });
  }

  return { isWeCom, detectWeCom, login, reviewLogin, request, logout, session };
}

module.exports = { createClient };
