"""``ToTensor`` as torchvision defines it: PIL image / HWC uint8 array -> CHW float32 in [0, 1]."""
import numpy as np
import torch


class ToTensor:
    def __call__(self, pic):
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return tensor.to(torch.float32).div(255) if tensor.dtype == torch.uint8 else tensor.to(torch.float32)
