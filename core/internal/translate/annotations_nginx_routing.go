package translate

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicegw/sluice/core/internal/model"
	"github.com/sluicegw/sluice/core/internal/route"
)

// The routing annotations: path regexes and rewrites, redirects, CORS and
// canaries. Each sluice.io key has an ingress-nginx twin of the same name
// under NginxPrefix with the same values (nginxRoutingAliases); they apply
// to every path of the Ingress.
const (
	// AnnotationUseRegex "true" makes the Ingress's paths RE2 regular
	// expressions, matched case-insensitively from the start of the path.
	AnnotationUseRegex = "sluice.io/use-regex"
	// AnnotationRewriteTarget is the path sent upstream; "$1".."$9" are
	// the path's regex groups. It implies use-regex.
	AnnotationRewriteTarget = "sluice.io/rewrite-target"
	// AnnotationPermanentRedirect is an http(s) URL every request of the
	// Ingress is redirected to (301, or AnnotationPermanentRedirectCode).
	AnnotationPermanentRedirect     = "sluice.io/permanent-redirect"
	AnnotationPermanentRedirectCode = "sluice.io/permanent-redirect-code"
	// AnnotationTemporalRedirect is the same with 302 (or
	// AnnotationTemporalRedirectCode); it wins over a permanent one.
	AnnotationTemporalRedirect     = "sluice.io/temporal-redirect"
	AnnotationTemporalRedirectCode = "sluice.io/temporal-redirect-code"
	// AnnotationAppRoot is a path the request path "/" is redirected to
	// (302).
	AnnotationAppRoot = "sluice.io/app-root"
	// AnnotationEnableCORS "true" turns on CORS with the cors-* settings.
	AnnotationEnableCORS           = "sluice.io/enable-cors"
	AnnotationCORSAllowOrigin      = "sluice.io/cors-allow-origin"
	AnnotationCORSAllowMethods     = "sluice.io/cors-allow-methods"
	AnnotationCORSAllowHeaders     = "sluice.io/cors-allow-headers"
	AnnotationCORSExposeHeaders    = "sluice.io/cors-expose-headers"
	AnnotationCORSAllowCredentials = "sluice.io/cors-allow-credentials"
	AnnotationCORSMaxAge           = "sluice.io/cors-max-age"
	// AnnotationCanary "true" makes the Ingress a canary: it routes
	// nothing itself; its backends become alternatives of the routes of
	// other Ingresses with the same host and path.
	AnnotationCanary                = "sluice.io/canary"
	AnnotationCanaryWeight          = "sluice.io/canary-weight"
	AnnotationCanaryWeightTotal     = "sluice.io/canary-weight-total"
	AnnotationCanaryByHeader        = "sluice.io/canary-by-header"
	AnnotationCanaryByHeaderValue   = "sluice.io/canary-by-header-value"
	AnnotationCanaryByHeaderPattern = "sluice.io/canary-by-header-pattern"
	AnnotationCanaryByCookie        = "sluice.io/canary-by-cookie"
)

// The ingress-nginx defaults of the cors-* annotations.
const (
	defaultCORSMethods = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
	defaultCORSHeaders = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
	defaultCORSMaxAge  = 1728000
)

// routingChecks checks the value of each routing annotation and returns
// it normalized, or a problem. The same check serves the sluice.io key and
// its ingress-nginx twin.
var routingChecks = map[string]func(ns, v string) (string, string){
	AnnotationUseRegex:              nginxBool,
	AnnotationRewriteTarget:         checkRewriteTarget,
	AnnotationPermanentRedirect:     checkRedirectURL,
	AnnotationPermanentRedirectCode: checkRedirectCode(308),
	AnnotationTemporalRedirect:      checkRedirectURL,
	AnnotationTemporalRedirectCode:  checkRedirectCode(307),
	AnnotationAppRoot:               checkAppRoot,
	AnnotationEnableCORS:            nginxBool,
	AnnotationCORSAllowOrigin:       checkCORSOrigins,
	AnnotationCORSAllowMethods:      checkList(methodRE, "is not a comma-separated list of methods"),
	AnnotationCORSAllowHeaders:      checkList(headerListRE, "is not a comma-separated list of header names"),
	AnnotationCORSExposeHeaders:     checkList(exposeListRE, "is not a comma-separated list of header names or *"),
	AnnotationCORSAllowCredentials:  nginxBool,
	AnnotationCORSMaxAge:            checkInt(0, 1<<31-1),
	AnnotationCanary:                nginxBool,
	AnnotationCanaryWeight:          checkInt(0, 1<<31-1),
	AnnotationCanaryWeightTotal:     checkInt(1, 1<<31-1),
	AnnotationCanaryByHeader:        checkToken("is not a header name"),
	AnnotationCanaryByHeaderValue:   checkNonEmpty,
	AnnotationCanaryByHeaderPattern: checkPattern,
	AnnotationCanaryByCookie:        checkToken("is not a cookie name"),
}

// routingAnnotations are the sluice.io routing annotations translate
// honours.
var routingAnnotations = func() map[string]bool {
	out := map[string]bool{}
	for k := range routingChecks {
		out[k] = true
	}
	return out
}()

// routingAlias has the shape of nginxAliases' values (annotations_nginx.go).
type routingAlias struct {
	sluice  string
	convert func(ns, v string) (string, string)
}

// nginxRoutingAliases are the ingress-nginx twins of routingAnnotations;
// nginxCompat looks them up after nginxAliases.
var nginxRoutingAliases = func() map[string]routingAlias {
	out := map[string]routingAlias{}
	for k, check := range routingChecks {
		out[NginxPrefix+strings.TrimPrefix(k, "sluice.io/")] = routingAlias{k, check}
	}
	return out
}()

// ingressRouting is the routing policy of one Ingress, from its
// annotations.
type ingressRouting struct {
	regex    bool
	rewrite  string
	redirect *model.Redirect
	appRoot  string
	cors     *model.CORS
	canary   *model.Canary // Backend unset; nil when not a canary
}

// routingState is the builder's routing state: the policy of the Ingress
// being added and the canary Ingresses, attached once every route exists.
type routingState struct {
	cur      ingressRouting
	canaries []pendingCanary
}

type pendingCanary struct {
	ing  *networkingv1.Ingress
	src  model.ObjectRef
	spec model.Canary
}

// annField names the annotation the user wrote for a sluice.io routing
// key of ing (after nginxCompat): its ingress-nginx twin when the key's
// value is the twin's, translated (nginxCompat copied it, or the user
// wrote both alike), else the key itself.
func annField(ing *networkingv1.Ingress, key string) string {
	twin := NginxPrefix + strings.TrimPrefix(key, "sluice.io/")
	if tv, ok := ing.Annotations[twin]; ok {
		own, set := ing.Annotations[key]
		if v, problem := routingChecks[key](ing.Namespace, strings.TrimSpace(tv)); !set || problem == "" && v == own {
			key = twin
		}
	}
	return fmt.Sprintf("metadata.annotations[%q]", key)
}

// parseRouting reads ing's routing annotations, after nginxCompat has
// copied the honoured ingress-nginx ones onto their sluice.io keys. A bad
// value is a warning and that setting is left out.
func (b *builder) parseRouting(ing *networkingv1.Ingress, src model.ObjectRef) ingressRouting {
	val := func(key string) (string, bool) {
		v, ok := ing.Annotations[key]
		if !ok {
			return "", false
		}
		sv, problem := routingChecks[key](ing.Namespace, strings.TrimSpace(v))
		if problem != "" {
			b.warn(src, fmt.Sprintf("%s: %q %s; ignored", annField(ing, key), v, problem))
			return "", false
		}
		return sv, true
	}
	isTrue := func(key string) bool { v, _ := val(key); return v == "true" }
	var out ingressRouting

	out.rewrite, _ = val(AnnotationRewriteTarget)
	out.regex = isTrue(AnnotationUseRegex) || out.rewrite != ""

	if u, ok := val(AnnotationTemporalRedirect); ok {
		out.redirect = &model.Redirect{URL: u, Code: 302}
		if c, ok := val(AnnotationTemporalRedirectCode); ok {
			out.redirect.Code, _ = strconv.Atoi(c)
		}
		if _, both := ing.Annotations[AnnotationPermanentRedirect]; both {
			b.warn(src, fmt.Sprintf("%s: ignored: %s wins", annField(ing, AnnotationPermanentRedirect), annField(ing, AnnotationTemporalRedirect)))
		}
	} else if u, ok := val(AnnotationPermanentRedirect); ok {
		out.redirect = &model.Redirect{URL: u, Code: 301}
		if c, ok := val(AnnotationPermanentRedirectCode); ok {
			out.redirect.Code, _ = strconv.Atoi(c)
		}
	}
	out.appRoot, _ = val(AnnotationAppRoot)

	if isTrue(AnnotationEnableCORS) {
		c := &model.CORS{
			AllowOrigins:     []string{"*"},
			AllowMethods:     defaultCORSMethods,
			AllowHeaders:     defaultCORSHeaders,
			AllowCredentials: true,
			MaxAge:           defaultCORSMaxAge,
		}
		if v, ok := val(AnnotationCORSAllowOrigin); ok {
			c.AllowOrigins = strings.Split(v, ",")
		}
		if v, ok := val(AnnotationCORSAllowMethods); ok {
			c.AllowMethods = v
		}
		if v, ok := val(AnnotationCORSAllowHeaders); ok {
			c.AllowHeaders = v
		}
		if v, ok := val(AnnotationCORSExposeHeaders); ok {
			c.ExposeHeaders = v
		}
		credSet := false
		if v, ok := val(AnnotationCORSAllowCredentials); ok {
			c.AllowCredentials, credSet = v == "true", true
		}
		if v, ok := val(AnnotationCORSMaxAge); ok {
			c.MaxAge, _ = strconv.Atoi(v)
		}
		if c.AllowCredentials && slices.Equal(c.AllowOrigins, []string{"*"}) {
			// Browsers refuse credentials with "Access-Control-Allow-Origin: *".
			c.AllowCredentials = false
			if credSet {
				b.warn(src, fmt.Sprintf("%s: \"true\" cannot go with the origin \"*\" (browsers refuse the pair); credentials are not allowed: list the origins in cors-allow-origin",
					annField(ing, AnnotationCORSAllowCredentials)))
			}
		}
		out.cors = c
	} else {
		b.warnUnused(ing, src, "enable-cors is not true", AnnotationCORSAllowOrigin, AnnotationCORSAllowMethods,
			AnnotationCORSAllowHeaders, AnnotationCORSExposeHeaders, AnnotationCORSAllowCredentials, AnnotationCORSMaxAge)
	}

	canaryKeys := []string{AnnotationCanaryWeight, AnnotationCanaryWeightTotal, AnnotationCanaryByHeader,
		AnnotationCanaryByHeaderValue, AnnotationCanaryByHeaderPattern, AnnotationCanaryByCookie}
	if !isTrue(AnnotationCanary) {
		b.warnUnused(ing, src, "canary is not true", canaryKeys...)
		return out
	}
	c := model.Canary{WeightTotal: 100}
	if v, ok := val(AnnotationCanaryWeightTotal); ok {
		c.WeightTotal, _ = strconv.Atoi(v)
	}
	if v, ok := val(AnnotationCanaryWeight); ok {
		c.Weight, _ = strconv.Atoi(v)
		if c.Weight > c.WeightTotal {
			b.warn(src, fmt.Sprintf("%s: %d is more than the total weight %d; every request goes to the canary", annField(ing, AnnotationCanaryWeight), c.Weight, c.WeightTotal))
			c.Weight = c.WeightTotal
		}
	}
	c.Header, _ = val(AnnotationCanaryByHeader)
	c.HeaderValue, _ = val(AnnotationCanaryByHeaderValue)
	c.HeaderPattern, _ = val(AnnotationCanaryByHeaderPattern)
	if c.Header == "" {
		b.warnUnused(ing, src, "canary-by-header is not set", AnnotationCanaryByHeaderValue, AnnotationCanaryByHeaderPattern)
		c.HeaderValue, c.HeaderPattern = "", ""
	} else if c.HeaderValue != "" && c.HeaderPattern != "" {
		b.warn(src, fmt.Sprintf("%s: ignored: %s wins", annField(ing, AnnotationCanaryByHeaderPattern), annField(ing, AnnotationCanaryByHeaderValue)))
		c.HeaderPattern = ""
	}
	c.Cookie, _ = val(AnnotationCanaryByCookie)
	// On a canary, ingress-nginx ignores the main Ingress's other
	// annotations: the main route's rewrite, redirect and CORS apply.
	b.warnUnused(ing, src, "on a canary Ingress the main Ingress's settings apply", AnnotationUseRegex, AnnotationRewriteTarget,
		AnnotationPermanentRedirect, AnnotationTemporalRedirect, AnnotationAppRoot, AnnotationEnableCORS)
	out.canary = &c
	return out
}

// warnUnused warns about each of keys set on ing, which has no effect
// because of why.
func (b *builder) warnUnused(ing *networkingv1.Ingress, src model.ObjectRef, why string, keys ...string) {
	for _, k := range keys {
		if _, ok := ing.Annotations[k]; ok {
			b.warn(src, fmt.Sprintf("%s: ignored: %s", annField(ing, k), why))
		}
	}
}

// routePathKey is pathKey for the Ingress being added: with use-regex
// (or rewrite-target) every path is a PathRegex route keyed by the path
// as written, whatever its pathType.
func (b *builder) routePathKey(ing *networkingv1.Ingress, p *networkingv1.HTTPIngressPath) (model.PathType, string, string) {
	if !b.routing.cur.regex {
		return pathKey(p)
	}
	if p.PathType == nil {
		return "", "", "pathType: required (Exact, Prefix or ImplementationSpecific)"
	}
	path := displayPath(p.Path)
	if _, err := route.CompileRegexPath(path); err != nil {
		key := AnnotationUseRegex
		if b.routing.cur.rewrite != "" {
			key = AnnotationRewriteTarget
		}
		return "", "", fmt.Sprintf("path: %v (%s makes paths regular expressions)", err, annField(ing, key))
	}
	return model.PathRegex, path, ""
}

// deferCanary keeps a canary Ingress until every route exists; it reports
// whether ing is one (it then routes nothing itself).
func (b *builder) deferCanary(ing *networkingv1.Ingress, src model.ObjectRef) bool {
	c := b.routing.cur.canary
	if c == nil {
		return false
	}
	if ing.Spec.DefaultBackend != nil {
		b.warn(src, "spec.defaultBackend: ignored on a canary Ingress")
	}
	b.routing.canaries = append(b.routing.canaries, pendingCanary{ing: ing, src: src, spec: *c})
	return true
}

// attachCanaries makes each canary Ingress's backends alternatives of the
// routes with the same host and path (as written) whose Ingress is in the
// canary's namespace. The oldest canary of a route wins.
func (b *builder) attachCanaries() {
	for _, pc := range b.routing.canaries {
		ing, src := pc.ing, pc.src
		for i := range ing.Spec.Rules {
			rule := &ing.Spec.Rules[i]
			host, err := normalizeHost(rule.Host)
			if err != nil {
				b.warn(src, fmt.Sprintf("spec.rules[%d].host %q: %v; rule ignored", i, rule.Host, err))
				continue
			}
			if rule.HTTP == nil {
				continue
			}
			for j := range rule.HTTP.Paths {
				p := &rule.HTTP.Paths[j]
				field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
				if msg := checkBackendRef(&p.Backend); msg != "" {
					b.warn(src, fmt.Sprintf("%s.backend%s; canary ignored", field, msg))
					continue
				}
				main := b.mainRoute(host, p)
				if main == nil {
					b.warn(src, fmt.Sprintf("%s: canary: no Ingress routes host %q path %q; ignored", field, host, displayPath(p.Path)))
					continue
				}
				if main.Source.Namespace != ing.Namespace {
					// A weight would let any namespace divert a route it
					// does not own (the oldest Ingress wins a conflict).
					b.warn(src, fmt.Sprintf("%s: canary: host %q path %q is routed by %s of another namespace; ignored", field, host, main.Path, main.Source))
					continue
				}
				if main.Canary != nil {
					b.warn(src, fmt.Sprintf("%s: canary: host %q path %q already has the canary %s (the oldest canary wins); ignored", field, host, main.Path, main.Canary.Source))
					continue
				}
				c := pc.spec
				c.Source = src
				c.Backend = b.backend(src, backendField{rule: i, path: j}, ing.Namespace, p.Backend.Service)
				main.Canary = &c
			}
		}
	}
}

// mainRoute finds the route a canary path belongs to: same host and path
// as written; among several (an Exact and a Prefix "/a"), the one of the
// same path type, else the first in match order.
func (b *builder) mainRoute(host string, p *networkingv1.HTTPIngressPath) *model.Route {
	path := displayPath(p.Path)
	var want model.PathType
	if pt, _, msg := pathKey(p); msg == "" {
		want = pt
	}
	var best *model.Route
	for k, r := range b.routes {
		if k.host != host || r.Path != path {
			continue
		}
		switch {
		case best == nil:
			best = r
		case (r.PathType == want) != (best.PathType == want):
			if r.PathType == want {
				best = r
			}
		case compareRoutes(r, best) < 0:
			best = r
		}
	}
	return best
}

var (
	methodRE     = regexp.MustCompile(`^[A-Za-z]+$`)
	headerListRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	exposeListRE = regexp.MustCompile(`^([A-Za-z0-9_-]+|\*)$`)
	tokenRE      = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	// An origin: scheme "://" host, the host's first label may be "*",
	// an optional port; compared without regard to case.
	originRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]*://(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*(:[0-9]{1,5})?$`)
	// nginxVarRE finds "$" not followed by 1..9: an nginx variable.
	nginxVarRE = regexp.MustCompile(`\$([^1-9]|$)`)
)

// checkList accepts a comma-separated list whose items each match re and
// returns it as "a, b, c".
func checkList(re *regexp.Regexp, problem string) func(string, string) (string, string) {
	return func(_, v string) (string, string) {
		items := strings.Split(v, ",")
		for i, it := range items {
			items[i] = strings.TrimSpace(it)
			if !re.MatchString(items[i]) {
				return "", problem
			}
		}
		return strings.Join(items, ", "), ""
	}
}

func checkInt(lo, hi int) func(string, string) (string, string) {
	return func(_, v string) (string, string) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return "", fmt.Sprintf("is not a whole number in %d..%d", lo, hi)
		}
		return strconv.Itoa(n), ""
	}
}

func checkToken(problem string) func(string, string) (string, string) {
	return func(_, v string) (string, string) {
		if !tokenRE.MatchString(v) {
			return "", problem
		}
		return v, ""
	}
}

func checkNonEmpty(_, v string) (string, string) {
	if v == "" {
		return "", "is empty"
	}
	return v, ""
}

func checkPattern(_, v string) (string, string) {
	if v == "" {
		return "", "is empty"
	}
	if _, err := regexp.Compile(v); err != nil {
		return "", fmt.Sprintf("is not an RE2 regular expression: %v", err)
	}
	return v, ""
}

// checkRewriteTarget accepts a path, absolute or starting with a group
// ("$1"), whose "$" are followed by a group number 1..9.
func checkRewriteTarget(_, v string) (string, string) {
	switch {
	case v == "":
		return "", "is empty"
	case !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "$"):
		return "", `must be a path starting with "/" or a group ("$1")`
	case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", "contains white space or a control character"
	}
	if nginxVarRE.MatchString(v) {
		return "", "uses an nginx variable; only the groups $1..$9 are supported"
	}
	return v, ""
}

// checkRedirectURL accepts an absolute http or https URL, as ingress-nginx
// does.
func checkRedirectURL(_, v string) (string, string) {
	u, err := url.ParseRequestURI(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "is not an absolute http or https URL"
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", "contains white space or a control character"
	}
	return v, ""
}

// checkRedirectCode accepts 300..hi, the range ingress-nginx accepts.
func checkRedirectCode(hi int) func(string, string) (string, string) {
	return func(_, v string) (string, string) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 300 || n > hi {
			return "", fmt.Sprintf("is not a redirect status in 300..%d", hi)
		}
		return strconv.Itoa(n), ""
	}
}

func checkAppRoot(_, v string) (string, string) {
	switch {
	case !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//"):
		return "", `must be a path starting with one "/"`
	case strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", "contains white space or a control character"
	}
	return v, ""
}

// checkCORSOrigins accepts "*" alone or a comma-separated list of origins
// ("https://a.example:8443", "https://*.example.com"), lowercased.
func checkCORSOrigins(_, v string) (string, string) {
	if v == "*" {
		return v, ""
	}
	items := strings.Split(v, ",")
	for i, it := range items {
		it = strings.ToLower(strings.TrimSpace(it))
		switch {
		case it == "*":
			return "", `lists "*" with other origins`
		case !originRE.MatchString(it):
			return "", fmt.Sprintf("has %q, which is not an origin (scheme://host[:port], the first label may be *)", it)
		}
		items[i] = it
	}
	slices.SortFunc(items, cmp.Compare)
	return strings.Join(slices.Compact(items), ","), ""
}
