// Types of the wecomgate client kit (miniprogram_dist/index.js). Contract: SPEC §8; docs/client.md.

/** The gateway's error codes (SPEC §6). */
export type GatewayErrorCode =
  | 'invalid_request' | 'unauthenticated' | 'invalid_code' | 'corp_not_allowed' | 'wrong_corp'
  | 'user_not_allowed' | 'user_inactive' | 'review_forbidden' | 'rate_limited' | 'wecom_unavailable'
  | 'wecom_error' | 'not_found' | 'method_not_allowed';

/** The kit's own codes; `http_<status>` is a status ≥ 400 whose body names no `error`. */
export type KitErrorCode =
  | 'network_error' | 'not_wecom' | 'qy_login_failed' | 'qy_consent_refused' | 'login_timeout'
  | 'signed_out' | 'aborted'
  | `http_${number}`;

export type ErrorCode = GatewayErrorCode | KitErrorCode;

/** Message map keyed by error code; `http_error` is used for `http_<status>`, `{status}` is replaced. */
export type Messages = Partial<Record<GatewayErrorCode | Exclude<KitErrorCode, `http_${number}`> | 'http_error', string>>
  & { [code: string]: string | undefined };

export interface WecomgateError extends Error {
  name: 'WecomgateError';
  code: ErrorCode;
  /** HTTP status; 0 when no response came. */
  status: number;
  /** The message in the chosen messages map, else `detail`. */
  message: string;
  /** The gateway's own (English) message, or the platform's errMsg. */
  detail: string;
  /** With `wrong_corp`: the corp the code belongs to. */
  corp?: string;
  /** Seconds from `Retry-After` (`rate_limited`, `wecom_unavailable`). */
  retryAfter?: number;
  data?: unknown;
  header?: Record<string, string>;
}

export interface Session {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  userid: string;
  corpid?: string;
  corp?: string;
  name: string;
  review: boolean;
}

export interface ClientOptions {
  /** The gateway's origin, e.g. `https://api.example.com`; the token is sent to this origin only. */
  baseURL: string;
  /** The `wx` object; defaults to the global one. */
  wx?: object;
  /** Corp name to sign in with; default: the gateway's first corp. */
  corp?: string;
  /** Storage key of the session; default `wecomgate`. */
  storageKey?: string;
  /** The gateway's `endpoints` prefix; default `/wecom`. */
  endpoints?: string;
  /** Bound of one shared login in ms, also passed to `wx.qy.login({timeout})`; default 15000. */
  loginTimeout?: number;
  /** Merged over the built-in zh-CN map; `false` keeps the gateway's English messages. */
  messages?: Messages | false;
}

export interface Response<T = unknown> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

export interface UploadResponse {
  statusCode: number;
  /** The body as text, as wx.uploadFile gives it. */
  data: string;
  header?: Record<string, string>;
}

export interface DownloadResponse {
  statusCode: number;
  tempFilePath: string;
  filePath?: string;
  header?: Record<string, string>;
}

/** The Promise of a request, upload or download, with the parts of a RequestTask the kit can offer. */
export interface Task<T> extends Promise<T> {
  /** Before the send nothing goes out; during it the platform task is aborted. Rejects with `aborted`. */
  abort(): void;
  onProgressUpdate(listener: (res: { progress: number; [k: string]: unknown }) => void): void;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT';

export interface RequestOptions {
  /** A path on baseURL (`/api/orders` or `api/orders`) or a full URL. */
  url: string;
  method?: Method;
  data?: string | object | ArrayBuffer;
  header?: Record<string, string>;
  timeout?: number;
  dataType?: 'json' | string;
  responseType?: 'text' | 'arraybuffer';
  enableHttp2?: boolean;
  [option: string]: unknown;
}

export interface UploadOptions {
  url: string;
  filePath: string;
  name: string;
  formData?: Record<string, string>;
  header?: Record<string, string>;
  timeout?: number;
  [option: string]: unknown;
}

export interface DownloadOptions {
  url: string;
  filePath?: string;
  header?: Record<string, string>;
  timeout?: number;
  [option: string]: unknown;
}

/** What `POST {endpoints}/decrypt` answers for `wx.qy.getMobile`: the decrypted JSON, watermark removed. */
export interface MobileInfo {
  mobile: string;
  [field: string]: unknown;
}

/** The decrypted `wx.qy.getEmail`. */
export interface EmailInfo {
  email: string;
  [field: string]: unknown;
}

/** The decrypted `wx.qy.getEnterpriseUserInfo`. */
export interface EnterpriseUserInfo {
  corpid: string;
  userid: string;
  name: string;
  /** 0 unknown, 1 male, 2 female. */
  gender: number;
  [field: string]: unknown;
}

export interface Client {
  /** `environment === 'wxwork'`, else the presence of `wx.qy`; asked on every call. */
  isWeCom(): boolean;
  detectWeCom(): Promise<boolean>;
  login(options?: { corp?: string }): Promise<Session>;
  reviewLogin(username: string, password: string): Promise<Session>;
  request<T = any>(options: RequestOptions | string): Task<Response<T>>;
  uploadFile(options: UploadOptions): Task<UploadResponse>;
  downloadFile(options: DownloadOptions | string): Task<DownloadResponse>;
  /** The token for what the kit cannot wrap; signs in inside WeCom; `''` outside without a session. */
  getToken(): Promise<string>;
  logout(): Promise<void>;
  session(): Session | null;
  /**
   * A fresh `wx.qy.login` (always: WeCom encrypts with the latest login's session_key), then
   * `wx.qy.getMobile` (the user consents: call it from a tap), then `POST {endpoints}/decrypt`.
   * Rejects with `not_wecom` outside WeCom, `qy_consent_refused` when wx.qy.getMobile fails,
   * `not_found` when the gateway has no `decrypt`, `review_forbidden`, `invalid_request`.
   */
  getMobile(): Promise<MobileInfo>;
  /** As `getMobile`, with `wx.qy.getEmail`. */
  getEmail(): Promise<EmailInfo>;
  /** As `getMobile`, with `wx.qy.getEnterpriseUserInfo` (silent for users in the app's visible range). */
  getEnterpriseUserInfo(): Promise<EnterpriseUserInfo>;
}

export function createClient(options: ClientOptions): Client;

/** The built-in Chinese messages. */
export const zhCN: Messages;
