;; membomb: with an "x-bomb" header, grows memory one page at a time until
;; memory.grow fails at the host's cap, then aborts like an allocator that
;; ran out of memory.
(module
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-bomb") ;; 6
  (func (export "handle_request") (result i64)
    (if (i64.ne (i64.const 0)
          (call $get_header_values (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0)))
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (unreachable)))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)))
