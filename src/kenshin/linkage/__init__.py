"""番号連携サーバ (issue 4): the 個人番号 vault and 団体内統合宛名番号.

Only the pure 個人番号 rules exist so far (mynumber.py); the vault, its own database and the
interface for other systems are still to come.
"""
