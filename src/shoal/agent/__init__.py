"""shoal.agent"""
