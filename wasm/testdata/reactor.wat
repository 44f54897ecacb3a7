;; reactor: a WASI reactor. _initialize must run before any export: it sets
;; $ready; handle_request answers 500 if it did not run, else 200 "ready".
(module
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1 1)
  (global $ready (mut i32) (i32.const 0))
  (data (i32.const 0) "ready")
  (func (export "_initialize") (global.set $ready (i32.const 1)))
  (func (export "handle_request") (result i64)
    (if (i32.eqz (global.get $ready))
      (then (call $set_status_code (i32.const 500)) (return (i64.const 0))))
    (call $write_body (i32.const 1) (i32.const 0) (i32.const 5))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
