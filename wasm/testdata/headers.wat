;; headers: 3 request header reads + 1 request header set, then next.
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value" (func $set_header_value
    (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "Accept")       ;; 6
  (data (i32.const 16) "User-Agent")  ;; 10
  (data (i32.const 32) "X-Request-Id");; 12
  (data (i32.const 48) "X-Filtered")  ;; 10
  (data (i32.const 64) "1")           ;; 1
  (func (export "handle_request") (result i64)
    (drop (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 1024) (i32.const 1024)))
    (drop (call $get_header_values (i32.const 0) (i32.const 16) (i32.const 10) (i32.const 1024) (i32.const 1024)))
    (drop (call $get_header_values (i32.const 0) (i32.const 32) (i32.const 12) (i32.const 1024) (i32.const 1024)))
    (call $set_header_value (i32.const 0) (i32.const 48) (i32.const 10) (i32.const 64) (i32.const 1))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
