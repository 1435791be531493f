"""The compute engine: the one place a SparkSession is built (local mode or a cluster) and
the code is packaged for executors. Imports only ``errors``, ``settings`` and ``telemetry``.
"""
