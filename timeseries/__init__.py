"""ostinato.timeseries"""
