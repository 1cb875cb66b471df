"""Every `action_id` the bot puts on a button or menu; the listeners route on these.

They are part of the contract with messages already posted: a notice drawn last week still
carries them, so an id is never renamed, only added.
"""

# Lookups (path 1)
ACTION_PAGE = "runs_page"  # a prefix: Previous and Next carry it with a suffix
ACTION_SHARE = "runs_share"
ACTION_OPEN = "run_open"  # a link button: Slack opens the URL and still sends the click

# Notices (path 2)
ACTION_ACK = "incident_ack"
ACTION_MUTE = "incident_mute"
ACTION_RECENT = "incident_recent"
ACTION_SUBSCRIBE_ALL = "subscribe_all"
