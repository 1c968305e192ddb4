"""ostinato.recsys"""
