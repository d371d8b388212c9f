"""shoal.protocol"""
