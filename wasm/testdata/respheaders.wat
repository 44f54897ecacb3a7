;; respheaders: buffers the response, then in handle_response sets
;; "X-Filter: rewritten", removes "X-Secret" and turns a 404 into 410.
(module
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "set_header_value" (func $set_header_value
    (param i32 i32 i32 i32 i32)))
  (import "http_handler" "remove_header" (func $remove_header (param i32 i32 i32)))
  (import "http_handler" "get_status_code" (func $get_status_code (result i32)))
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "X-Filter")   ;; 8
  (data (i32.const 16) "rewritten") ;; 9
  (data (i32.const 32) "X-Secret")  ;; 8
  (func (export "handle_request") (result i64)
    (drop (call $enable_features (i32.const 2))) ;; buffer_response
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)
    (call $set_header_value (i32.const 1) (i32.const 0) (i32.const 8) (i32.const 16) (i32.const 9))
    (call $remove_header (i32.const 1) (i32.const 32) (i32.const 8))
    (if (i32.eq (call $get_status_code) (i32.const 404))
      (then (call $set_status_code (i32.const 410))))))
