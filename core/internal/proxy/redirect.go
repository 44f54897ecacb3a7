package proxy

import (
	"net/http"
	"strconv"
)

// redirect answers r with code and Location loc, and a one-line body as
// nginx sends for its own redirects (none for HEAD). loc was checked by
// translate: it holds no white space or control characters.
func redirect(w http.ResponseWriter, r *http.Request, code int, loc string) {
	hdr := w.Header()
	hdr.Set("Location", loc)
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + loc + "\n"))
	}
}
