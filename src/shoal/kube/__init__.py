"""shoal.kube"""
