package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which scripts/deps.sh installs.
const chromiumPath = "/usr/bin/chromium"

// TestDashboardInChromium opens the admin dashboard of a real gateway (with
// routes, a local CA certificate and a failing filter) in headless
// Chromium, with the admin token in the URL fragment, and checks what the
// page shows. The screenshot is saved under $ARTIFACTS_DIR, else the
// test's artifact directory; its path is logged.
func TestDashboardInChromium(t *testing.T) {
	if _, err := exec.LookPath(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: scripts/deps.sh installs the Debian package chromium", chromiumPath)
		}
		t.Skipf("%s is missing (scripts/deps.sh installs the Debian package chromium); CI=true makes this a failure", chromiumPath)
	}
	// Not SLUICE_: the gateway refuses SLUICE_ variables that are not
	// config keys, and the harness passes the test's environment on.
	outDir := os.Getenv("ARTIFACTS_DIR")
	be := startBackend(t, "be", nil)
	const token = "dashboard-test-token-0123456789"
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, cfgFile, fmt.Sprintf(`admin:
  token: %s
tls:
  issuer: local
  storage: %s
  hosts: [shop.test]
`, token, filepath.Join(t.TempDir(), "tls")))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "base.yaml"), classYAML+"---\n"+service("be", be))
	writeFile(t, filepath.Join(dir, "shop.yaml"), ingress("shop", `  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}
      - {path: /cart, pathType: Exact, backend: {service: {name: be, port: {number: 80}}}}
`))
	writeFile(t, filepath.Join(dir, "trap.yaml"), filteredIngress("trap", "trap.test", "be", "name: trapper\nmodule: file://"+guest(t, "trap")+"\nfail: closed"))
	g := startGateway(t, "--config", cfgFile, "--manifests", dir)
	admin := "http://" + g.addr("admin")

	// The failing filter fails 4 times; one request passes it.
	for i := range 5 {
		req, _ := http.NewRequest("GET", "http://"+g.addr("http")+"/", nil)
		req.Host = "trap.test"
		if i > 0 {
			req.Header.Set("x-trap", "1")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The API (and the TLS counters beside it) refuse requests without
	// the token.
	for _, path := range []string{"/api/routes", "/stats/tls"} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without token: status %d, want 401", path, resp.StatusCode)
		}
	}
	waitUntil(t, 20*time.Second, "the shop.test certificate in /api/certificates", func() bool {
		req, _ := http.NewRequest("GET", admin+"/api/certificates", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"shop.test"`)
	})

	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(admin+"/ui/#token="+token),
		chromedp.WaitVisible(`body[data-loaded="true"]`),
	); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	routes := text("#routes-table tbody")
	for _, want := range []string{"shop.test", "/cart", "Exact", "trap.test", "default/be:80", "Ingress default/shop", "trapper"} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes table lacks %q:\n%s", want, routes)
		}
	}
	certs := text("#certificates-table tbody")
	if !strings.Contains(certs, "shop.test") || !strings.Contains(certs, "managed") {
		t.Errorf("certificates table lacks the managed shop.test certificate:\n%s", certs)
	}
	days, err := strconv.Atoi(strings.TrimSpace(text("#certificates-table td.days-left")))
	if err != nil || days < 1 || days > 400 {
		t.Errorf("days left %q (%v): want a whole number of days of a fresh certificate", text("#certificates-table td.days-left"), err)
	}
	// The local CA's certificates live about a week: under 14 days is shown as expiring soon.
	cls, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#certificates-table td.days-left").className`))
	if err != nil || (days < 14) != strings.Contains(cls, "soon") {
		t.Errorf("days-left cell class %q for %d days (%v): want \"soon\" exactly under 14 days", cls, days, err)
	}
	filters := text("#filters-table tbody")
	if m := regexp.MustCompile(`trapper\s+wasm\s+(\d+)\s+(\d+)\s+([\d.]+) %`).FindStringSubmatch(filters); m == nil || m[1] != "5" || m[2] != "4" || m[3] != "80.0" {
		t.Errorf("filters table: want trapper with 5 calls, 4 errors, 80.0 %%; got:\n%s", filters)
	}
	if warn := text("#warnings-list"); !strings.Contains(warn, "no warnings") {
		t.Errorf("warnings: %q, want none", warn)
	}
	// The token left the address bar at once.
	if u, err := chromedp.Run(ctx, chromedp.Location()); err != nil || strings.Contains(u, token) {
		t.Errorf("the page URL %q (%v) still holds the token", u, err)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if outDir == "" {
		outDir = t.ArtifactDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(outDir, "dashboard.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s (%d bytes)", file, len(shot))
	if strings.Contains(g.Log(), token) {
		t.Error("the admin token appears in the gateway's log")
	}
}
