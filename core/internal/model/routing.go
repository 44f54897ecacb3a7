package model

// PathRegex is the path type of a route whose Path is an RE2 regular
// expression (ingress-nginx use-regex or rewrite-target): it matches,
// case-insensitively, a request path that starts with a match, as the
// nginx location `~* "^PATH"` does.
const PathRegex PathType = "Regex"

// Redirect is a route answered by the gateway with a redirect, never
// proxied (ingress-nginx permanent-redirect and temporal-redirect).
type Redirect struct {
	// URL is the Location, an absolute http or https URL, sent as written.
	URL string `json:"url"`
	// Code is the status: 301 (permanent) or 302 (temporal) unless the
	// annotation sets another 3xx.
	Code int `json:"code"`
}

// CORS is a route's cross-origin policy (ingress-nginx enable-cors and
// cors-*). Lists are comma-separated, as the Access-Control-* headers
// send them.
type CORS struct {
	// AllowOrigins are the origins served: exact ("https://a.example:8443"),
	// with one wildcard label ("https://*.example.com"), or the single
	// entry "*" for any origin. Compared without regard to case.
	AllowOrigins []string `json:"allowOrigins"`
	// AllowMethods, AllowHeaders, ExposeHeaders are the header values;
	// ExposeHeaders "" sends none.
	AllowMethods  string `json:"allowMethods"`
	AllowHeaders  string `json:"allowHeaders"`
	ExposeHeaders string `json:"exposeHeaders,omitempty"`
	// AllowCredentials sends Access-Control-Allow-Credentials: true. It is
	// never true together with the origin "*" (browsers refuse that pair).
	AllowCredentials bool `json:"allowCredentials"`
	// MaxAge is Access-Control-Max-Age in seconds; negative sends none.
	MaxAge int `json:"maxAge"`
}

// Canary is an alternative backend for a route (ingress-nginx canary), taken
// per request: by header, then by cookie, then by weight.
type Canary struct {
	Backend *Backend `json:"backend"`
	// Source is the canary Ingress.
	Source ObjectRef `json:"source"`
	// Header, when set, is a request header that selects the canary:
	// "always" selects it and "never" does not, unless HeaderValue or
	// HeaderPattern is set, in which case an equal value (or a value the
	// RE2 pattern matches) selects it. Any other value falls through to
	// the cookie and the weight.
	Header        string `json:"header,omitempty"`
	HeaderValue   string `json:"headerValue,omitempty"`
	HeaderPattern string `json:"headerPattern,omitempty"`
	// Cookie, when set, is a cookie whose value "always" or "never"
	// decides; other values fall through to the weight.
	Cookie string `json:"cookie,omitempty"`
	// Weight out of WeightTotal requests go to the canary when neither
	// header nor cookie decided. WeightTotal is at least 1.
	Weight      int `json:"weight"`
	WeightTotal int `json:"weightTotal"`
}
