"""ostinato.audio"""
