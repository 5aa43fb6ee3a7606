//! Reading a tract tensor's elements, as answers, lookups and our operators do.

use tract_onnx::prelude::*;

/// The elements of a plain in-memory tensor.
pub fn slice_of<T: Datum>(t: &Tensor) -> TractResult<&[T]> {
    t.try_as_plain_ram()?.as_slice::<T>()
}
