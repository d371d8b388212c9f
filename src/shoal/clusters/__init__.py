"""shoal.clusters"""
