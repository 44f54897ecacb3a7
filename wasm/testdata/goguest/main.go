// Command goguest is a standard-Go http-wasm guest used by the wasm
// package tests: a reactor (-buildmode=c-shared) that sets the response
// header X-Go-Guest to "hello " + the request's X-Name + " GOGC=" + $GOGC.
package main

import (
	"fmt"
	"os"
	"unsafe"
)

//go:wasmimport http_handler get_header_values
func getHeaderValues(kind uint32, name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, bufLimit uint32) uint64

//go:wasmimport http_handler set_header_value
func setHeaderValue(kind uint32, name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

var buf [256]byte

func header(name string) string {
	cl := getHeaderValues(0, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	n := uint32(cl)
	if cl>>32 == 0 || n == 0 || n > uint32(len(buf)) {
		return ""
	}
	return string(buf[:n-1]) // first value, without its NUL
}

//go:wasmexport handle_request
func handleRequest() uint64 {
	v := "hello " + header("X-Name") + " GOGC=" + os.Getenv("GOGC")
	name := "X-Go-Guest"
	setHeaderValue(1, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), unsafe.Pointer(unsafe.StringData(v)), uint32(len(v)))
	return 1
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {}

func main() {}

func init() { fmt.Println("go guest initialized") }
