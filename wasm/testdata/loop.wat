;; loop: spins forever when the request has an "x-loop" header, else next.
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "x-loop") ;; 6
  (func (export "handle_request") (result i64)
    (if (i64.ne (i64.const 0)
          (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0)))
      (then (loop $forever (br $forever))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
