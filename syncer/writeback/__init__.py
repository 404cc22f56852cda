"""Write-back: status files, git notes, pull-request previews and the forge clients."""
