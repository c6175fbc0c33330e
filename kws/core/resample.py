"""Sample-rate conversion in bounded blocks: a stream resampled piece by piece gives what
``scipy.signal.resample_poly`` gives for the whole signal.

The polyphase filter (a Kaiser-windowed sinc of ``2 * 10 * max(up, down) + 1`` taps, as scipy
designs it) reaches ``10 * max(up, down) / up`` input samples to each side of an output sample, so
an output is final once that many later inputs have arrived. :class:`StreamResampler` keeps only
that much input as context, starts each segment on a multiple of ``down`` input samples (where
the output grid repeats) and emits the final outputs; memory stays bounded whatever the length.
Used by file decoding, ``kws listen`` and the Wyoming server alike.
"""

from __future__ import annotations

from math import gcd

import numpy as np

MIN_RATE, MAX_RATE = 4000, 192000  # Hz: rates the project accepts from a file or a client


def check_rate(rate: object, what: str = "sample rate") -> int:
    """``rate`` as an int, or ValueError naming it when it is not an integer in
    ``MIN_RATE..MAX_RATE`` Hz."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) \
            or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"{what} {rate!r} Hz is not allowed; expected an integer "
                         f"{MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


class StreamResampler:
    """Resample float32 mono audio from ``rate_in`` to ``rate_out`` Hz in pieces of any size.

    Example::

        r = StreamResampler(48000, 16000)
        out = [r.process(block) for block in blocks] + [r.flush()]  # == resample_poly(all)
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        rate_in, rate_out = check_rate(rate_in), check_rate(rate_out)
        g = gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        self.half_len = 10 * max(self.up, self.down)
        if self.up != self.down:
            from scipy.signal import firwin

            self.filter = firwin(2 * self.half_len + 1, 1.0 / max(self.up, self.down),
                                 window=("kaiser", 5.0)).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._buf = np.zeros(0, np.float32)  # input from absolute index self._lo
        self._lo = 0  # a multiple of down
        self._seen = 0  # input samples so far
        self._done = 0  # output samples emitted so far

    def _outputs(self, end: int) -> np.ndarray:
        """Outputs ``done .. end - 1`` from the buffered segment."""
        from scipy.signal import resample_poly

        first = self._lo * self.up // self.down  # the segment's first output index
        y = resample_poly(self._buf, self.up, self.down, window=self.filter)
        out = y[self._done - first:end - first].astype(np.float32)
        self._done = end
        return out

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Push samples; return the outputs they complete (possibly none)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.up == self.down:
            return x
        self._buf = np.concatenate((self._buf, x))
        self._seen += len(x)
        # output j reads inputs up to (j * down + half_len) / up: final when that has arrived
        end = max(self._done, ((self._seen - 1) * self.up - self.half_len) // self.down)
        if end <= self._done:
            return np.zeros(0, np.float32)
        out = self._outputs(end)
        # keep the context the next outputs read: inputs from (done * down - half_len) / up
        keep = max(self._lo, (self._done * self.down - self.half_len) // self.up - 1)
        keep -= keep % self.down
        self._buf = self._buf[keep - self._lo:]
        self._lo = keep
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs, the input ending (as zeros) after the last sample."""
        if self.up == self.down or self._seen == 0:
            return np.zeros(0, np.float32)
        total = -(-self._seen * self.up // self.down)  # ceil: resample_poly's length
        return self._outputs(total) if total > self._done else np.zeros(0, np.float32)
