"""For tests of cursor-paged lists, in any service: walk every page as a client would."""


def walk_pages(fetch, limit, max_pages=100):
    """Every item of a cursor-paged list, in order, and how many pages it took. `fetch(cursor)` answers
    one page ({"items", "next_cursor"}), first asked with cursor None; each page holds at most `limit`
    items, and the walk fails rather than loop if the pages do not end."""
    seen, cursor, pages = [], None, 0
    while True:
        page = fetch(cursor)
        assert len(page["items"]) <= limit
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return seen, pages
        assert pages < max_pages, "paging does not end"
