// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The two hooks the walks call, so that a fused operation is a type, not new walks (oneDNN threads one
// with_relu flag from its descriptor to its kernel; here it is one template parameter of each entry in
// the kernel table, batch_norm_kernel.cc's fill()).
//
// An epilogue: what the forward's elementwise pass does to each chunk of normalized values before it is
// stored. A gradient mask: what backward does to each chunk of grad_output as it is read, in the sums
// and in the grad_input pass alike, so the gradients are those of the epilogue's output.
// Both are called as hook(values, at, valid), where `values` is a Floats (passes in float arithmetic) or
// a Chunk<T> (in double), `at` is the address in the tensor the chunk is stored to (epilogue) or was
// read from (mask), and `valid` the chunk's values there (the rest are padding). An operation that reads
// another tensor at the same place (a residual input, or the forward's output for a ReLU's mask) finds
// it at the same offset from that tensor's start as `at` from the hooked tensor's.
// Today's kernels run the identities below; their state, if any, comes from the entry point.

struct NoEpilogue {
  template <typename Values, typename T>
  BATCHNORM_ALWAYS_INLINE Values operator()(Values values, const T* /*at*/, int /*valid*/) const {
    return values;
  }
};

struct NoGradientMask {
  template <typename Values, typename T>
  BATCHNORM_ALWAYS_INLINE Values operator()(Values values, const T* /*at*/, int /*valid*/) const {
    return values;
  }
};
