"""shoal.client"""
