import pytest
from PIL import Image

from sfda.data.lists import class_order, list_name, make_domain_list, read_list
from sfda.data.verify import verify_domain
from sfda.errors import DataError
from sfda.paths import LISTS_DIR


def test_read_list_paths_with_spaces_comments_and_blank_lines(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("# header\nReal World/Alarm_Clock/00001.jpg 0\n\nArt/Bed/00002.jpg 3\n")
    e = read_list(f, num_classes=65)
    assert [(x.path, x.label, x.line) for x in e] == [
        ("Real World/Alarm_Clock/00001.jpg", 0, 2),
        ("Art/Bed/00002.jpg", 3, 4),
    ]


@pytest.mark.parametrize(
    "text,match",
    [
        ("a.jpg 0\nb.jpg\n", r"l\.txt:2: expected '<path> <label>'"),
        ("a.jpg 0\nb.jpg x\n", r"l\.txt:2: label 'x' is not an integer"),
        ("a.jpg 0\nb.jpg 65\n", r"l\.txt:2: label 65 is outside \[0, 65\)"),
        ("a.jpg -1\n", r"l\.txt:1: label -1 is outside"),
        ("\n\n", r"has no entries"),
    ],
)
def test_read_list_errors_name_file_and_line(tmp_path, text, match):
    f = tmp_path / "l.txt"
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        read_list(f, num_classes=65)


def test_missing_list_says_how_to_make_one(tmp_path):
    with pytest.raises(DataError, match="sfda lists make"):
        read_list(tmp_path / "nope.txt")


def test_office_home_order_is_case_insensitive():
    names = ["Trash_Can", "TV", "Table", "Telephone", "ToothBrush", "Toys", "Webcam", "Alarm_Clock"]
    order = class_order(names)
    assert order.index("TV") == order.index("Trash_Can") + 1
    assert order[-1] == "Webcam" and order[0] == "Alarm_Clock"
    cs = class_order(names, case_sensitive=True)
    assert cs.index("TV") < cs.index("Table")  # Generate_list's (wrong for Office-Home) order


def test_shipped_office_home_lists_have_the_official_counts_and_order():
    counts = {"Art": 2427, "Clipart": 4365, "Product": 4439, "RealWorld": 4357}
    for dom, n in counts.items():
        e = read_list(LISTS_DIR / "office-home" / f"{dom}.txt", 65)
        assert len(e) == n
        assert e[0].path.startswith(f"{dom}/Alarm_Clock/")
        by_label = {x.label: x.path.split("/")[1] for x in e}
        assert by_label[63] == "TV" and by_label[62] == "Trash_Can" and by_label[64] == "Webcam"
        assert sorted(by_label) == list(range(65))


def _tree(root, domain, classes, n=2, sub=None):
    for c in classes:
        d = root / domain / (sub or "") / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(d / f"{i:05d}.jpg")


def test_make_domain_list_orders_and_descends_into_images_folder(tmp_path):
    _tree(tmp_path, "amazon", ["bike", "back_pack"], sub="images")
    e = make_domain_list(tmp_path, "amazon")
    assert [x.path for x in e] == [
        "amazon/images/back_pack/00000.jpg",
        "amazon/images/back_pack/00001.jpg",
        "amazon/images/bike/00000.jpg",
        "amazon/images/bike/00001.jpg",
    ]
    assert [x.label for x in e] == [0, 0, 1, 1]


def test_make_domain_list_with_given_class_order(tmp_path):
    _tree(tmp_path, "clipart", ["zebra", "apple"])
    e = make_domain_list(tmp_path, "clipart", classes=["zebra", "apple"])
    assert [x.label for x in e] == [0, 0, 1, 1] and e[0].path.startswith("clipart/zebra/")
    with pytest.raises(DataError, match="not in the given class order"):
        make_domain_list(tmp_path, "clipart", classes=["zebra"])


def test_real_world_folder_maps_to_the_official_list_name():
    assert list_name("Real World") == "RealWorld"
    assert list_name("Real_World") == "RealWorld"
    assert list_name("Art") == "Art"


def test_verify_reports_missing_files_bad_class_folders_and_real_world(tmp_path):
    root = tmp_path / "oh"
    _tree(root, "Real World", ["Alarm_Clock", "Backpack"])
    lst = tmp_path / "RealWorld.txt"
    lst.write_text(
        "RealWorld/Alarm_Clock/00000.jpg 0\nRealWorld/Alarm_Clock/00001.jpg 0\n"
        "RealWorld/Backpack/00000.jpg 1\nRealWorld/Backpack/00001.jpg 0\n"
    )
    rep = verify_domain(root, lst, num_classes=65, expected=4)
    text = rep.render()
    assert not rep.ok
    assert "Real World" in text and "rename" in text  # the folder-name problem, with the fix
    assert "4 missing" in text  # nothing found under RealWorld/
    assert "label 0" in text and "Backpack" in text  # one label spread over two folders
    # after renaming, only the class-folder inconsistency remains
    (root / "Real World").rename(root / "RealWorld")
    rep = verify_domain(root, lst, num_classes=65, expected=4)
    assert rep.missing == [] and not rep.ok
    lst.write_text(
        "RealWorld/Alarm_Clock/00000.jpg 0\nRealWorld/Alarm_Clock/00001.jpg 0\n"
        "RealWorld/Backpack/00000.jpg 1\nRealWorld/Backpack/00001.jpg 1\n"
    )
    rep = verify_domain(root, lst, num_classes=65, expected=5)
    assert not rep.ok and "expected 5" in rep.render()
    rep = verify_domain(root, lst, num_classes=65, expected=4, deep=True)
    assert rep.ok, rep.render()


def test_verify_deep_finds_unreadable_images(tmp_path):
    root = tmp_path / "d"
    _tree(root, "Art", ["A"], n=2)
    (root / "Art" / "A" / "00001.jpg").write_bytes(b"not an image")
    lst = tmp_path / "Art.txt"
    lst.write_text("Art/A/00000.jpg 0\nArt/A/00001.jpg 0\n")
    rep = verify_domain(root, lst, num_classes=1, deep=True)
    assert not rep.ok and rep.unreadable and "00001.jpg" in rep.render()


def test_compressed_lists_are_found_by_their_plain_name(tmp_path):
    import gzip

    from sfda.data.lists import read_list, shipped_list

    (tmp_path / "big.txt.gz").write_bytes(gzip.compress(b"a/x.jpg 0\nb/y.jpg 1\n"))
    assert shipped_list(tmp_path / "big.txt") == tmp_path / "big.txt.gz"
    assert [(e.path, e.label, e.line) for e in read_list(tmp_path / "big.txt")] == [
        ("a/x.jpg", 0, 1),
        ("b/y.jpg", 1, 2),
    ]
    (tmp_path / "big.txt").write_text("c/z.jpg 2\n")  # a plain list wins over the compressed one
    assert [e.path for e in read_list(tmp_path / "big.txt")] == ["c/z.jpg"]


def test_shipped_compressed_lists_have_the_official_counts():
    from sfda.data.lists import read_list
    from sfda.data.verify import KNOWN_COUNTS
    from sfda.paths import PROJECT_ROOT

    for domain, n in KNOWN_COUNTS["domainnet-126"].items():  # what `sfda lists verify` checks a copy against
        entries = read_list(PROJECT_ROOT / "data_lists" / "domainnet-126" / f"{domain}.txt", 126)
        assert len(entries) == n, domain
    assert (KNOWN_COUNTS["domainnet-126"]["real"], KNOWN_COUNTS["domainnet-126"]["sketch"]) == (69622, 24147)
    assert {e.label for e in read_list(PROJECT_ROOT / "data_lists" / "visda-c" / "validation.txt", 12)} == set(
        range(12)
    )
