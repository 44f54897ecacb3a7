package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// target is one thing wrk measures: the upstream directly, or a proxy in
// front of it.
type target struct {
	Name string // row name in the tables
	Peer bool   // a proxy Sluice is compared against (nginx, HAProxy, Caddy)
	Bin  string // the command it needs on PATH; empty: none
	// MaxConns caps the idle scenario's connections (0: no cap): HAProxy
	// refuses to start when 2 × maxconn exceeds the open-file limit, which
	// is 20,000 on this machine and cannot be raised.
	MaxConns int
	// Host is the Host header (and, over TLS, the certificate name) of
	// every request.
	Host string
	// start starts it; the returned process is the one measured.
	start func(l *lab, name string) (*proc, endpoints, error)
}

// endpoints are the base URLs a started target serves.
type endpoints struct{ HTTP, HTTPS string }

// eps returns the endpoints of a plain and a TLS listen address. The TLS
// URL names localhost, not 127.0.0.1: wrk sends its URL's host as SNI,
// even an IP address (RFC 6066 forbids it), and Sluice refuses a handshake
// whose SNI matches no certificate (tls.default_server_name only covers
// handshakes without SNI). localhost resolves to 127.0.0.1 here and is in
// the certificate, so every proxy sees the same SNI.
func eps(plain, tlsAddr string) endpoints {
	_, port, _ := strings.Cut(tlsAddr, ":")
	return endpoints{"http://" + plain, "https://localhost:" + port}
}

// route is one Ingress of a Sluice case.
type route struct {
	host    string
	filters string // the sluice.io/filters annotation (YAML), empty: none
	mtls    bool   // client certificates required (client-verify on)
}

const (
	// threeFilters is the built-in chain of the mTLS case: every filter
	// passes a request that presents the bench client certificate.
	threeFilters = `- name: mtls-identity
  config: {allow: [{cn: bench-client}], forward: xfcc}
- name: header-policy
  config: {request: {set: {X-Bench: "${host}"}, remove: [X-Internal]}, response: {remove: [Server]}}
- name: ratelimit
  config: {rate: 1000000000, period: 1s, burst: 1000000000, key: client_ip}`
	// twoFilters is the chain wrk can drive (wrk has no client
	// certificates, so mtls-identity would answer 401): header-policy and a
	// rate limit that is never reached.
	twoFilters = `- name: header-policy
  config: {request: {set: {X-Bench: "${host}"}, remove: [X-Internal]}, response: {remove: [Server]}}
- name: ratelimit
  config: {rate: 1000000000, period: 1s, burst: 1000000000, key: client_ip}`
	pluginFilter = `- name: benchplugin`
)

func targets() []target {
	return []target{
		{Name: "direct", Host: "bench.test", start: startDirect},
		{Name: "sluice", Host: "bench.test", start: sluiceCase(route{host: "bench.test"})},
		{Name: "sluice+2 filters", Host: "f.bench.test", start: sluiceCase(route{host: "f.bench.test", filters: twoFilters})},
		{Name: "sluice+plugin", Host: "p.bench.test", start: sluiceCase(route{host: "p.bench.test", filters: pluginFilter})},
		{Name: "nginx", Peer: true, Bin: "nginx", Host: "bench.test", start: startNginx},
		{Name: "haproxy", Peer: true, Bin: "haproxy", MaxConns: 9900, Host: "bench.test", start: startHAProxy},
		{Name: "caddy", Peer: true, Bin: "caddy", Host: "bench.test", start: startCaddy},
	}
}

func startDirect(l *lab, _ string) (*proc, endpoints, error) {
	return l.upstream, eps(l.upAddr, l.upTLSAddr), nil
}

// sluiceCase starts a gateway serving routes, all to the upstream, pinned
// to GOMAXPROCS=l.gomaxprocs, access log off.
func sluiceCase(routes ...route) func(*lab, string) (*proc, endpoints, error) {
	return func(l *lab, name string) (*proc, endpoints, error) {
		dir := filepath.Join(l.dir, name)
		p, ep, _, err := l.startSluice(dir, name, manifests(l, routes), nil)
		return p, ep, err
	}
}

// manifests is the IngressClass, the upstream's Service and
// EndpointSlice, the client CA Secret and one Ingress per route.
func manifests(l *lab, routes []route) string {
	_, port, _ := strings.Cut(l.upAddr, ":")
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.io/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: up-1
  namespace: default
  labels: {kubernetes.io/service-name: up}
addressType: IPv4
ports: [{name: http, port: %s}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
---
%s`, port, l.caSecret)
	for i, r := range routes {
		b.WriteString("---\n")
		b.WriteString(ingressYAML(fmt.Sprintf("r%d", i), r))
	}
	return b.String()
}

func ingressYAML(name string, r route) string {
	var ann strings.Builder
	if r.mtls {
		ann.WriteString("    sluice.io/client-verify: \"on\"\n    sluice.io/client-ca-secret: client-ca\n")
	}
	if r.filters != "" {
		ann.WriteString("    sluice.io/filters: |\n")
		for _, line := range strings.Split(r.filters, "\n") {
			ann.WriteString("      " + line + "\n")
		}
	}
	annotations := ""
	if ann.Len() > 0 {
		annotations = "  annotations:\n" + ann.String()
	}
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: default
%sspec:
  ingressClassName: sluice
  rules:
  - host: %s
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
`, name, annotations, r.host)
}

// startSluice writes dir/sluice.yaml and dir/manifests/all.yaml, starts
// the gateway and waits until the first route serves. extra is added to
// the config file. It returns the manifest folder too.
func (l *lab) startSluice(dir, name, manifestYAML string, extra []string) (*proc, endpoints, string, error) {
	md := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return nil, endpoints{}, "", err
	}
	if err := os.WriteFile(filepath.Join(md, "all.yaml"), []byte(manifestYAML), 0o644); err != nil {
		return nil, endpoints{}, "", err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, endpoints{}, "", err
	}
	cfg := fmt.Sprintf(`http_addr: %s
https_addr: %s
admin_addr: %s
manifests: %s
log: {format: json, level: info, access: false}
tls:
  storage: %s
  default_server_name: bench.test
  certificates: [{cert: %s, key: %s}]
  redirect: {enabled: false}
wasm: {cache_dir: %s}
plugins:
  benchplugin: {command: %s}
%s`, ports[0], ports[1], ports[2], md, filepath.Join(dir, "tls"), l.cert, l.key, l.wasm,
		filepath.Join(l.bin, "benchplugin"), strings.Join(extra, "\n"))
	cf := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cf, []byte(cfg), 0o644); err != nil {
		return nil, endpoints{}, "", err
	}
	p, err := l.start(name, []string{"GOMAXPROCS=" + l.gomaxprocs}, filepath.Join(l.bin, "sluice"), "run", "--config", cf)
	if err != nil {
		return nil, endpoints{}, "", err
	}
	return p, eps(ports[0], ports[1]), md, nil
}

func startNginx(l *lab, name string) (*proc, endpoints, error) {
	dir := filepath.Join(l.dir, name)
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, endpoints{}, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, endpoints{}, err
	}
	// One process (master_process off) with one worker's event loop:
	// the process measured is the one doing the work. Keep-alive on both
	// sides, no request-count limit per connection (as Sluice).
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 19000; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000000000;
  keepalive_timeout 120s;
  upstream up {
    server %[2]s;
    keepalive 256;
    keepalive_requests 1000000000;
  }
  server {
    listen %[3]s;
    listen %[4]s ssl;
    ssl_certificate %[5]s;
    ssl_certificate_key %[6]s;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, l.upAddr, ports[0], ports[1], l.cert, l.key)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, endpoints{}, err
	}
	p, err := l.start(name, nil, "nginx", "-p", dir, "-c", cf, "-e", filepath.Join(dir, "error.log"))
	return p, eps(ports[0], ports[1]), err
}

func startHAProxy(l *lab, name string) (*proc, endpoints, error) {
	dir := filepath.Join(l.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, endpoints{}, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, endpoints{}, err
	}
	// One process, one thread (nbthread 1), keep-alive on both sides.
	// maxconn: HAProxy needs 2 × maxconn + 15 file descriptors, and the
	// hard limit here is 20,000.
	conf := fmt.Sprintf(`global
  nbthread 1
  ulimit-n 20000
  maxconn 9990
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 60s
  timeout http-keep-alive 120s
  option http-keep-alive
frontend fe
  bind %s
  bind %s ssl crt %s
  default_backend be
backend be
  http-reuse always
  server up %s
`, ports[0], ports[1], l.pem, l.upAddr)
	cf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, endpoints{}, err
	}
	p, err := l.start(name, nil, "haproxy", "-db", "-f", cf)
	return p, eps(ports[0], ports[1]), err
}

func startCaddy(l *lab, name string) (*proc, endpoints, error) {
	dir := filepath.Join(l.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, endpoints{}, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, endpoints{}, err
	}
	_, hp, _ := strings.Cut(ports[0], ":")
	_, sp, _ := strings.Cut(ports[1], ":")
	// Sites without a host matcher, bound to loopback; the same
	// certificate as every other proxy; no admin API, no automatic HTTPS.
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
	default_sni bench.test
	storage file_system %s
}
http://:%s {
	bind 127.0.0.1
	reverse_proxy %s
}
https://:%s {
	bind 127.0.0.1
	tls %s %s
	reverse_proxy %s
}
`, filepath.Join(dir, "data"), hp, l.upAddr, sp, l.cert, l.key, l.upAddr)
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, endpoints{}, err
	}
	env := []string{"GOMAXPROCS=" + l.gomaxprocs, "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	p, err := l.start(name, env, "caddy", "run", "--config", cf, "--adapter", "caddyfile")
	return p, eps(ports[0], ports[1]), err
}

// version returns the first line of a proxy's version output.
func version(args ...string) string {
	// wrk -v exits 1 after printing its version: the output decides.
	out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
	if len(strings.TrimSpace(string(out))) == 0 {
		return "not found"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
