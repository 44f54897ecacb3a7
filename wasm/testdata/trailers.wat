;; trailers: enables the trailers feature (and buffer_response when the
;; request has "x-buffer"), and in handle_response sets the response
;; trailer "grpc-status: 7" and the header "x-saw-status" to the
;; upstream's status class digit.
(module
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "get_header_values" (func $get_header_values
    (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value" (func $set_header_value
    (param i32 i32 i32 i32 i32)))
  (import "http_handler" "get_status_code" (func $get_status_code (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "grpc-status")  ;; 11
  (data (i32.const 16) "7")
  (data (i32.const 32) "x-buffer")    ;; 8
  (data (i32.const 48) "x-saw-status");; 12
  (func (export "handle_request") (result i64)
    (drop (call $enable_features (i32.const 4)))
    (if (i64.ne (i64.const 0)
          (call $get_header_values (i32.const 0) (i32.const 32) (i32.const 8) (i32.const 0) (i32.const 0)))
      (then (drop (call $enable_features (i32.const 2)))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)
    (i32.store8 (i32.const 64)
      (i32.add (i32.const 48) (i32.div_u (call $get_status_code) (i32.const 100))))
    (call $set_header_value (i32.const 1) (i32.const 48) (i32.const 12) (i32.const 64) (i32.const 1))
    (call $set_header_value (i32.const 3) (i32.const 0) (i32.const 11) (i32.const 16) (i32.const 1))))
