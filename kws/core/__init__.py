"""What every stage shares: configuration, audio input, the export/runtime contract, the decision
rule, framing and timing, noise mixing, validation and optional-dependency errors. Imports
nothing from the other stages."""
