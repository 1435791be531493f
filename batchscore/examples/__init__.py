"""The synthetic example lake (customers with drift on demand, labels landing late) that the
demo, the tests and the benchmarks seed. Writes through ``storage`` only.
"""
