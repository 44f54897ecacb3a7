;; config: answers 200 with its per-route config (get_config) as the body.
(module
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1 1)
  (func (export "handle_request") (result i64)
    (local $n i32)
    (local.set $n (call $get_config (i32.const 0) (i32.const 65536)))
    (call $write_body (i32.const 1) (i32.const 0) (local.get $n))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
