from cotrain.data import get_dataset, train_transform
from cotrain.data.bench import loader_throughput, throughput_table


def test_loader_throughput_counts_images(voc_root):
    root, _ = voc_root
    dataset = get_dataset("voc", root, "train")
    rate = loader_throughput(dataset, train_transform(32), batch_size=2, num_workers=0, num_batches=3)
    assert rate > 0
    assert throughput_table([(0, rate)], 32, 2).splitlines()[-1].split()[0] == "0"
