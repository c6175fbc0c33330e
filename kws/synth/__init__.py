"""Speech synthesis for keywords typed as text: engines (:mod:`~kws.synth.tts`), voices
(:mod:`~kws.synth.voices`), pronunciations and confusables (:mod:`~kws.synth.phonemes`), and
``kws synth`` itself (:mod:`~kws.synth.synthesize`)."""
