;; badptr: passes a header name that runs past the end of memory.
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1 1)
  (func (export "handle_request") (result i64)
    (drop (call $get_header_values (i32.const 0) (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 0)))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
