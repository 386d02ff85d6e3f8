;; Claims a future ABI version the host does not speak.
(module
  (memory (export "memory") 1)
  (func (export "hs_abi_version") (result i32) (i32.const 2))
  (func (export "hs_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "hs_invoke") (param i32 i32) (result i64) (i64.const 0)))
