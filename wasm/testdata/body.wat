;; body: buffers the response and rewrites its body to "<<" + body + ">>".
;; The request context (42) is passed from handle_request to
;; handle_response and checked there.
(module
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "read_body" (func $read_body (param i32 i32 i32) (result i64)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 2 2)
  (data (i32.const 0) "<<>>")
  (func (export "handle_request") (result i64)
    (drop (call $enable_features (i32.const 2)))
    (i64.or (i64.shl (i64.const 42) (i64.const 32)) (i64.const 1)))
  (func (export "handle_response") (param $reqCtx i32) (param $isError i32)
    (local $n i32)
    (if (i32.ne (local.get $reqCtx) (i32.const 42)) (then (unreachable)))
    ;; read up to 64 KiB of the body at offset 65536
    (local.set $n (i32.wrap_i64
      (call $read_body (i32.const 1) (i32.const 65536) (i32.const 65536))))
    (call $write_body (i32.const 1) (i32.const 0) (i32.const 2))
    (call $write_body (i32.const 1) (i32.const 65536) (local.get $n))
    (call $write_body (i32.const 1) (i32.const 2) (i32.const 2))))
