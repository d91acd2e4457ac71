"""`gato bench ...`: speed measured as ratios against a baseline run in the same process.

Machines here are shared and noisy, so absolute numbers are reported with the machine but the
figure of merit is the ratio; the two sides are interleaved in rounds and the median taken.
"""
