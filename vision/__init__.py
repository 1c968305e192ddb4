"""ostinato.vision"""
