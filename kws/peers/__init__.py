"""Other wake word engines as score streams (openWakeWord, microWakeWord), for side-by-side
evaluation (:mod:`kws.eval`) and benchmarks (``kws bench --vs``); see :mod:`kws.peers.streams`."""

from kws.peers.streams import PEERS, PeerUnavailable, parse_spec, peer_streams

__all__ = ["PEERS", "PeerUnavailable", "parse_spec", "peer_streams"]
