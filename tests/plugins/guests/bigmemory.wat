;; Asks for 64 MiB of linear memory up front, over the default 32 MiB cap: fails at instantiation.
(module
  (memory (export "memory") 1024)
  (data (i32.const 16) "{\"issues\":[],\"resources\":[{\"resourceType\":\"Observation\",\"status\":\"final\"}]}")
  (func (export "hs_abi_version") (result i32) (i32.const 1))
  ;; Grows memory by enough pages for the input and hands out the new region.
  (func (export "hs_alloc") (param $n i32) (result i32)
    (local $old i32)
    (local.set $old (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1))))
    (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
    (i32.shl (local.get $old) (i32.const 16)))
  ;; (ptr << 32) | len, the ABI v1 result encoding.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "hs_invoke") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (i32.const 16) (i32.const 75))))
