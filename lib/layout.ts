import { type ArrayOf, type CheckedTensor, type DTypeOf, type FloatArray, type MemoryFormat, type Tensor, checkTensor, newLike } from './tensor';

/** A copy of a checked tensor's elements in `format` (same logical shape), into `destination` if given. */
export function permuteTo(x: CheckedTensor, format: MemoryFormat, destination?: FloatArray): Tensor {
  const data = destination ?? newLike(x.data, x.elements);
  if (x.memoryFormat === format) {
    data.set(x.data);
  } else {
    const { batch, channels, spatial } = x;
    const source = x.data;
    const toChannelsLast = format === 'channelsLast';
    for (let n = 0; n < batch; n++) {
      const base = n * channels * spatial;
      for (let c = 0; c < channels; c++) {
        for (let s = 0; s < spatial; s++) {
          // contiguous index base + c * spatial + s  <->  channels-last index base + s * channels + c
          if (toChannelsLast) data[base + s * channels + c] = source[base + c * spatial + s]!;
          else data[base + c * spatial + s] = source[base + s * channels + c]!;
        }
      }
    }
  }
  return { data, shape: [...x.shape], memoryFormat: format };
}

function permuted<A extends FloatArray>(input: Tensor<A>, name: string, format: MemoryFormat): Tensor<ArrayOf<DTypeOf<A>>> {
  const x = checkTensor(input, name);
  if (x.memoryFormat !== format && x.shape.length !== 4 && x.shape.length !== 5) {
    throw new RangeError(
      `Expected ${name} of rank 4 or 5 (channels-last exists for images and volumes) but received ${x.shape.length}D shape`,
    );
  }
  return permuteTo(x, format) as Tensor<ArrayOf<DTypeOf<A>>>;
}

/**
 * A copy of a rank-4/5 tensor stored channels-last (NHWC / NDHWC), as `x.contiguous(memory_format=
 * torch.channels_last)`; the logical shape is unchanged. Always returns new data.
 */
export function toChannelsLast<A extends FloatArray>(input: Tensor<A>): Tensor<ArrayOf<DTypeOf<A>>> {
  return permuted(input, 'input', 'channelsLast');
}

/** A copy of a rank-4/5 tensor stored contiguous (NCHW / NCDHW), as `x.contiguous()`. Always returns new data. */
export function toContiguous<A extends FloatArray>(input: Tensor<A>): Tensor<ArrayOf<DTypeOf<A>>> {
  return permuted(input, 'input', 'contiguous');
}
