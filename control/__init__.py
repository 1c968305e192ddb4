"""ostinato.control"""
