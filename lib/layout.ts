import { checkTensor, type FloatArray, type Tensor } from './tensor';

function permuted(input: Tensor, name: string, toChannelsLast: boolean): Tensor {
  const x = checkTensor(input, name);
  const wanted = toChannelsLast ? 'channelsLast' : 'contiguous';
  if (x.memoryFormat !== wanted && x.shape.length !== 4 && x.shape.length !== 5) {
    throw new RangeError(
      `Expected ${name} of rank 4 or 5 (channels-last exists for images and volumes) but received ${x.shape.length}D shape`,
    );
  }
  const data: FloatArray = x.data instanceof Float32Array ? new Float32Array(x.data.length) : new Float64Array(x.data.length);
  if (x.memoryFormat === wanted) {
    data.set(x.data);
  } else {
    const { batch, channels, spatial } = x;
    const source = x.data;
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
  return { data, shape: [...x.shape], memoryFormat: wanted };
}

/**
 * A copy of a rank-4/5 tensor stored channels-last (NHWC / NDHWC), as `x.contiguous(memory_format=
 * torch.channels_last)`; the logical shape is unchanged. Always returns new data.
 */
export function toChannelsLast(input: Tensor): Tensor {
  return permuted(input, 'input', true);
}

/** A copy of a rank-4/5 tensor stored contiguous (NCHW / NCDHW), as `x.contiguous()`. Always returns new data. */
export function toContiguous(input: Tensor): Tensor {
  return permuted(input, 'input', false);
}
