"""Make `import core` work under a plain `streamlit run dashboard/Home.py` (Streamlit puts only the
script's own folder on sys.path, not the repository root)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
