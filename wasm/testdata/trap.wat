;; trap: executes unreachable when the request has an "x-trap" header.
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "x-trap") ;; 6
  (func (export "handle_request") (result i64)
    (if (i64.ne (i64.const 0)
          (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0)))
      (then (unreachable)))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
