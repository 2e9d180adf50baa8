// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The tasks of an interleaved traversal: scratch rows per (channel block, row block), and the parallel
// loops over tasks and over channel blocks.

// Rows of doubles for every (channel block, row block) task, allocated once per call.
class TaskRows {
 public:
  TaskRows(const Tiling& tiling, int rowsPerTask, int64_t length)
      : rowsPerTask_(rowsPerTask), length_(length),
        data_(new double[static_cast<size_t>(tiling.channelBlocks * tiling.rowBlocks * rowsPerTask * length)]),
        rowBlocks_(tiling.rowBlocks) {}
  ~TaskRows() { delete[] data_; }
  TaskRows(const TaskRows&) = delete;
  TaskRows& operator=(const TaskRows&) = delete;
  double* row(int64_t channelBlock, int64_t rowBlock, int index) const {
    return data_ + ((channelBlock * rowBlocks_ + rowBlock) * rowsPerTask_ + index) * length_;
  }

 private:
  int64_t rowsPerTask_, length_;
  double* data_;
  int64_t rowBlocks_;
};

// Runs body(channelBlock, rowBlock) over every task of the tiling, in parallel. Each thread fences its
// non-temporal stores (forStreamedRows) once, at the end of its range.
template <typename F>
void forEachTask(const Geometry& g, const Tiling& tiling, F&& body) {
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) body(task / tiling.rowBlocks, task % tiling.rowBlocks);
    vec::streamFence();
  };
  parallelOver(tiling.channelBlocks * tiling.rowBlocks, tiling.channels * tiling.rows * g.spatial, run);
}

// Runs body(channelBlock) over the channel blocks, in parallel (fenced as forEachTask).
template <typename F>
void forEachChannelBlock(const Geometry& g, const Tiling& tiling, F&& body) {
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) body(block);
    vec::streamFence();
  };
  parallelOver(tiling.channelBlocks, tiling.channels * g.perChannel(), run);
}
